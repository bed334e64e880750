"""fer_node (and optionally fer_camera) for ROS 2 installs with launch / launch_ros.

    ros2 launch fer_perception fer.launch.py image_topic:=/camera/image_raw
    ros2 launch fer_perception fer.launch.py camera:=true video:=/path/clip.mp4 loop:=true
    ros2 launch fer_perception fer.launch.py camera:=true device:=/dev/video0
    ros2 launch fer_perception fer.launch.py params_file:=/path/my_fer.yaml lifecycle:=true
    ros2 launch fer_perception fer.launch.py camera:=true device:=0 camera_info_url:=file:///path/head.yaml

Parameters: the nodes' own defaults (config/fer.yaml, sections fer_node and fer_camera), overridden
by params_file when one is named. The shipped fer.yaml is not passed as a parameters file: what a
parameters file sets counts as given at start-up, and a given confidence_threshold would replace the
model's own (its sidecar's). pip-only installs (no launch/launch_ros) start the same nodes with the same
parameters with `fer_bringup` (see docs/node.md).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

PACKAGE = "fer_perception"


def _true(value: str) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _nodes(context, *args, **kwargs):
    share = get_package_share_directory(PACKAGE)
    params_file = LaunchConfiguration("params_file").perform(context)
    image_topic = LaunchConfiguration("image_topic").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    # fer_node/fer_camera derive `<image>/compressed` from the resolved `image`: one remap covers both.
    remaps = [("image", image_topic)]
    actions = []

    # Fast DDS shared-memory profile (16 MB segments, so that best-effort images between processes
    # are not lost), under the name this Fast DDS reads: FASTDDS_ (Fast DDS 3, Kilted+) or FASTRTPS_
    # (Fast DDS 2.x, Humble/Jazzy). A file the user named in either wins (the entry points do the
    # same for themselves: fer_perception.ros.dds.ensure_fastdds_profile).
    from fer_perception.ros.dds import PROFILE_ENVS, profile_env_names

    profile = next((os.environ[n] for n in PROFILE_ENVS if os.environ.get(n)), None)
    if profile is None:
        profile = os.path.join(share, "config", "fastdds_shm.xml")
        profile = profile if os.path.isfile(profile) else None
    for name in profile_env_names():
        if profile is not None and not os.environ.get(name):
            actions.append(SetEnvironmentVariable(name, profile))

    if _true(LaunchConfiguration("camera").perform(context)):
        source = ""
        for key in ("video", "device", "image"):
            value = LaunchConfiguration(key).perform(context)
            if value:
                source = value
        camera_params = [params_file] if params_file else []
        overrides = {}
        if source:
            overrides["source"] = source
        rate = LaunchConfiguration("rate").perform(context)
        if rate:
            overrides["rate"] = float(rate)
        if _true(LaunchConfiguration("loop").perform(context)):
            overrides["loop"] = True
        calibration = LaunchConfiguration("camera_info_url").perform(context)
        if calibration:
            overrides["camera_info_url"] = calibration
        if overrides:
            camera_params.append(overrides)
        actions.append(Node(
            package=PACKAGE, executable="fer_camera", name="fer_camera", namespace=namespace,
            parameters=camera_params, remappings=remaps, output="screen", emulate_tty=True,
        ))

    node_params = [params_file] if params_file else []
    model = LaunchConfiguration("model_path").perform(context)
    backend = LaunchConfiguration("backend").perform(context)
    overrides = {}
    if model:
        overrides["model_path"] = model
    if backend:
        overrides["backend"] = backend
    if overrides:
        node_params.append(overrides)
    if _true(LaunchConfiguration("lifecycle").perform(context)):
        actions.append(LifecycleNode(
            package=PACKAGE, executable="fer_node", name="fer_node", namespace=namespace,
            arguments=["--lifecycle"], parameters=node_params, remappings=remaps, output="screen",
            emulate_tty=True,
        ))
    else:
        actions.append(Node(
            package=PACKAGE, executable="fer_node", name="fer_node", namespace=namespace,
            parameters=node_params, remappings=remaps, output="screen", emulate_tty=True,
        ))
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic fer_node reads (and fer_camera publishes)"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="ROS 2 parameters file with fer_node / fer_camera sections (empty: "
                                          "the nodes' defaults, config/fer.yaml)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="run fer_node as a managed lifecycle node (needs configure + activate)"),
        DeclareLaunchArgument("model_path", default_value="", description="expression model (empty: params_file)"),
        DeclareLaunchArgument("backend", default_value="", description="auto/tensorrt/onnxruntime/tflite (empty: params_file)"),
        DeclareLaunchArgument("camera", default_value="false", description="also start fer_camera"),
        DeclareLaunchArgument("video", default_value="", description="fer_camera: video file"),
        DeclareLaunchArgument("device", default_value="", description="fer_camera: device index or /dev/videoN"),
        DeclareLaunchArgument("image", default_value="", description="fer_camera: still image"),
        DeclareLaunchArgument("rate", default_value="", description="fer_camera: frames per second (empty: params_file)"),
        DeclareLaunchArgument("loop", default_value="false", description="fer_camera: loop the video file"),
        DeclareLaunchArgument("camera_info_url", default_value="",
                              description="fer_camera: calibration YAML for camera_info (empty: params_file, uncalibrated)"),
        OpaqueFunction(function=_nodes),
    ])
