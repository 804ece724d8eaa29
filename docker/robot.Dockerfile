# rt2 robot side: ROS 2 Jazzy + MoveIt 2 (Servo, moveit_py, Panda resources) + Gazebo Harmonic
# (ros_gz, gz_ros2_control) + ros2_controllers + camera drivers + this workspace, built.
#
#   docker build -f docker/robot.Dockerfile -t rt2-robot:jazzy .
#   docker run --rm -it rt2-robot:jazzy make demo                     # embedded MuJoCo demo
#   docker run --rm -it rt2-robot:jazzy bash -lc \
#     "ros2 launch rt2_bringup sim.launch.py gui:=false model_path:=/models/rt2"   # Gazebo
#   docker compose -f docker/compose.yaml up                          # + GPU policy server
#
# On a robot PC, run it with --network host (DDS to the robot driver) and your devices
# (--device /dev/video0, or --privileged for a RealSense), and unset
# ROS_AUTOMATIC_DISCOVERY_RANGE (or set SUBNET) so DDS leaves the container.
#
# Not built in rt2's CI: the development machines have no Docker engine and no registry access
# beyond PyPI/Debian. It runs scripts/setup.sh (RT2_ROS_DISTRO=jazzy: the venv sees
# /opt/ros/jazzy) like a developer machine. For reproducible builds pin the base image by digest
# (docker buildx imagetools inspect ros:jazzy-ros-base-noble) in ROS_IMAGE.
ARG ROS_IMAGE=ros:jazzy-ros-base-noble
FROM ${ROS_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive
# CPU build of torch for the in-process policy; the GPU policy server is docker/server.Dockerfile.
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}

RUN apt-get update && apt-get install -y --no-install-recommends \
      python3-venv python3-pip git make curl \
      libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libosmesa6 \
      liburdfdom-tools \
      ros-jazzy-moveit \
      ros-jazzy-moveit-servo \
      ros-jazzy-moveit-py \
      ros-jazzy-moveit-configs-utils \
      ros-jazzy-moveit-resources-panda-description \
      ros-jazzy-moveit-resources-panda-moveit-config \
      ros-jazzy-ros-gz \
      ros-jazzy-gz-ros2-control \
      ros-jazzy-ros2-controllers \
      ros-jazzy-controller-manager \
      ros-jazzy-control-msgs \
      ros-jazzy-robot-state-publisher \
      ros-jazzy-xacro \
      ros-jazzy-cv-bridge \
      ros-jazzy-usb-cam \
      ros-jazzy-realsense2-camera \
      ros-jazzy-rviz2 \
      ros-jazzy-rqt-publisher ros-jazzy-rqt-topic ros-jazzy-rqt-service-caller \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws/rt2
COPY . .
# Uses /opt/ros/jazzy, makes a venv that sees its packages, installs torch/transformers/mujoco,
# and colcon-builds the workspace. (apt is done above: RT2_SKIP_APT=1.)
RUN RT2_ROS_DISTRO=jazzy RT2_SKIP_APT=1 bash scripts/setup.sh

ENV ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    OMP_WAIT_POLICY=PASSIVE \
    MUJOCO_GL=egl
# Every shell (and `bash -lc` in compose) gets the rt2 environment: venv + /opt/ros/jazzy +
# the built workspace.
RUN echo '. /ws/rt2/scripts/env.sh' >> /root/.bashrc \
 && echo '. /ws/rt2/scripts/env.sh' > /etc/profile.d/rt2.sh
SHELL ["/bin/bash", "-c"]
CMD ["bash"]
