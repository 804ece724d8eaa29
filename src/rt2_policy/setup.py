from pathlib import Path

from setuptools import find_packages, setup

package_name = "rt2_policy"


def model_files():
    """The shipped models (``models/<name>/*``) installed to ``share/rt2_policy/models``."""
    out = []
    for model in sorted(Path("models").glob("*")):
        files = sorted(str(f) for f in model.iterdir() if f.is_file())
        if files:
            out.append((f"share/{package_name}/models/{model.name}", files))
    return out


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        *model_files(),
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
            "serve = rt2_policy.serving.server:main",
            "rt2-serve = rt2_policy.serving.server:main",
            "build_tiny_model = rt2_policy.tiny_model:main",
            "train = rt2_policy.training.__main__:main",
            "recorder_node = rt2_policy.recorder_node:main",
            "rosbag_to_lerobot = rt2_policy.data.rosbag_import:main",
        ],
    },
)
