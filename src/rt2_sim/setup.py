from glob import glob

from setuptools import find_packages, setup

package_name = "rt2_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/worlds", glob("worlds/*.sdf")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rt2 maintainers",
    maintainer_email="maintainers@rt2.dev",
    description="Embedded MuJoCo simulator with a MoveIt Servo-compatible Cartesian servo.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_node = rt2_sim.sim_node:main",
            "generate_vqa = rt2_sim.vqa_generation:main",
            "generate_demos = rt2_sim.generate_demos:main",
            "generate_patch_labels = rt2_sim.patch_labels:main",
        ],
    },
)
