"""Embedded MuJoCo simulator of a 7-DoF Franka Panda arm on a table with coloured objects.

Pure-Python core (no rclpy): :mod:`rt2_sim.scene` builds the MuJoCo model,
:mod:`rt2_sim.cartesian_servo` holds the MoveIt Servo-like twist servo math and
:mod:`rt2_sim.simulation` ties both into :class:`~rt2_sim.simulation.ArmSimulation`.
The ROS 2 node lives in :mod:`rt2_sim.sim_node` and is the only module that imports rclpy.
"""
