"""ROS 2 node shells. Everything here needs rclpy; the cores (perception, model, control,
training) do not."""

try:  # pragma: no cover - exercised only where ROS 2 is (or is not) installed
    import rclpy  # noqa: F401
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "fastwam_ros.nodes needs a ROS 2 installation (Humble or Jazzy): rclpy could not be "
        "imported. Source your ROS 2 setup first, e.g. `source /opt/ros/jazzy/setup.bash`, and "
        "create the Python venv with --system-site-packages so rclpy stays visible. "
        "The ROS-free cores (fastwam_ros.perception, .model, .control, .training) work without it."
    ) from exc
