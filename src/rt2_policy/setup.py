from setuptools import find_packages, setup

package_name = "rt2_policy"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rt2 maintainers",
    maintainer_email="maintainers@rt2.dev",
    description="RT-2-style VLA policy core and its ROS 2 lifecycle node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_node = rt2_policy.policy_node:main",
            "build_tiny_model = rt2_policy.tiny_model:main",
        ],
    },
)
