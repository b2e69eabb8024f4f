"""dnnsim hardware models: parts (catalog TOML -> specs), device models (op time), links.

    from hwmodels import catalog, model_for
    gpu = model_for("v100")                 # or model_for(spec, profile="measured.toml")
    t = gpu.op_time_s(op)                   # seconds
"""
from . import catalog
from .arm import ARMModel
from .cpu import CPUModel
from .gpu import GPUModel
from .host import host_device_copy_time_s, host_memcpy_time_s
from .model import DeviceModel, model_for
from .network import transfer_time_s
from .profile import Profile
from .specs import DeviceSpec, HardwareError, HostSpec, LinkSpec

__all__ = [
    "DeviceSpec", "LinkSpec", "HostSpec", "HardwareError", "DeviceModel", "model_for",
    "Profile", "catalog", "GPUModel", "CPUModel", "ARMModel", "transfer_time_s",
    "host_memcpy_time_s", "host_device_copy_time_s",
]
