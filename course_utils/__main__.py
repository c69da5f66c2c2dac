"""``python -m course_utils doctor``: versions, the chosen device and the data status."""

from __future__ import annotations

import argparse
import platform
import sys
import warnings


def doctor() -> int:
    import torch

    from .datafiles import data_root, dataset_status, offline_mode
    from .settings import channels_last_report, device_report, precision_report, smoke_mode, timed_per_model

    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:  # pragma: no cover
        tv = "not installed"
    print(f"Python       {platform.python_version()} ({sys.executable})")
    print(f"torch        {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})")
    print(f"torchvision  {tv}")
    try:
        device, why = device_report()
        print(f"device       {device}  ({why})")
    except ValueError as err:
        print(f"device       ERROR: {err}")
        return 1
    try:
        dtype, why_dtype = precision_report(device)
        layout, why_layout = channels_last_report(device)
    except ValueError as err:
        print(f"precision    ERROR: {err}")
        return 1
    if timed_per_model(device):
        print("precision    timed per model when training starts: float32 or bfloat16, whichever is faster "
              "(fast_settings.py; COURSE_PRECISION)")
        print("layout       timed per model likewise: default or channels_last (COURSE_CHANNELS_LAST)")
    else:
        print(f"precision    {str(dtype).removeprefix('torch.')}  ({why_dtype}; COURSE_PRECISION)")
        print(f"layout       channels_last {'on' if layout else 'off'}  ({why_layout}; COURSE_CHANNELS_LAST)")
    print(f"smoke mode   {smoke_mode()}  (COURSE_SMOKE)")
    try:
        print(f"offline      {offline_mode()}  (COURSE_OFFLINE)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            root = data_root()
    except ValueError as err:
        print(f"data         ERROR: {err}")
        return 1
    print(f"data root    {root}  (COURSE_DATA)")
    for warning in caught:
        print(f"             {warning.message}")
    bad = 0
    statuses = dataset_status(root)
    width = max(map(len, statuses), default=0)
    for name, status in statuses.items():
        print(f"  {name:<{width}}  {status}")
        bad += status != "verified"
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils")
    parser.add_argument("command", choices=["doctor"], help="doctor: check this installation")
    parser.parse_args(argv)
    return doctor()


if __name__ == "__main__":
    sys.exit(main())
