"""fer_perception: facial expression recognition for ROS 2 (runtime side, no TensorFlow)."""

__version__ = "0.1.0"
