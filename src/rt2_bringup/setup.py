from glob import glob

from setuptools import find_packages, setup

package_name = "rt2_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + package_name + "/urdf", glob("urdf/*.xacro")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rt2 maintainers",
    maintainer_email="maintainers@rt2.dev",
    description="Launch files, configuration and the embedded demo runner of rt2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "demo = rt2_bringup.demo:main",
            "evaluate = rt2_bringup.evaluate:main",
            "gripper_bridge = rt2_bringup.gripper_bridge:main",
            "ready_pose = rt2_bringup.ready_pose:main",
            "send_instruction = rt2_bringup.send_instruction:main",
        ],
    },
)
