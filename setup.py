"""ament_python package fer_perception: also a plain pip-installable package (see README)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "fer_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["fer_perception", "fer_perception.*"]),
    # The repository root is the package root: an editable install is then a plain .pth entry
    # (setuptools' quiet "simple layout" path) rather than an import hook it warns about.
    package_dir={"": "."},
    package_data={package_name: ["models/*.onnx", "models/*.tflite", "models/*.json", "models/*LICENSE", "models/*NOTICE"]},
    # TensorRT's per-machine engines and their build info are built on the target, never shipped.
    exclude_package_data={package_name: ["models/*.build.json", "models/*.engine", "models/*.calib"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + package_name + "/models", glob("fer_perception/models/*.onnx")
         + glob("fer_perception/models/*.tflite")
         + [f for f in glob("fer_perception/models/*.json") if not f.endswith(".build.json")]
         + glob("fer_perception/models/*LICENSE") + glob("fer_perception/models/*NOTICE")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="fer_perception developers",
    maintainer_email="fer-perception@example.org",
    description="Facial expression recognition for ROS 2: ARCH-1 separable CNN on ONNX Runtime/TensorRT/TFLite.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "fer_node = fer_perception.ros.node:main",
            "fer_camera = fer_perception.ros.camera_source:main",
            "fer_listener = fer_perception.ros.listener:main",
            "fer_bringup = fer_perception.ros.bringup:main",
            "fer_demo = fer_perception.ros.demo:main",
        ],
    },
)
