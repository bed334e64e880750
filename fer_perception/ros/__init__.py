"""The ROS 2 shell of fer_perception: every module that imports rclpy or a ROS message package.

The pure core (``fer_perception.*`` outside this package) never imports rclpy; these modules wrap it
in nodes, parameters, diagnostics, message conversion and the console entry points.
"""
