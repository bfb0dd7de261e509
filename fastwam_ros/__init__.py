"""fastwam_ros: the Fast-WAM world action model on ROS 2.

Kept trivial on purpose: in a ROS build this file and the one rosidl generates for the
message package land on the same path (see README, "Packaging"). The version lives in
``fastwam_ros.version``.
"""
