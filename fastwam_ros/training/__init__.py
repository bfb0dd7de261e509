"""training core of fastwam_ros (ROS-free)."""
