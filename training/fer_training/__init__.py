"""fer_training: training, evaluation, export and experiment grid for the fer_perception models.

TensorFlow/Keras live here only; the ROS runtime (fer_perception) never imports this package.
"""

__version__ = "0.1.0"
