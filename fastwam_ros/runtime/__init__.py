"""ROS-free glue between the node shells and the cores: parameter schemas, the policy worker
thread, chunk/message field conversion, diagnostics builders, launch planning.

Nothing in this package imports rclpy; torch is only imported by the model the worker loads.
"""
