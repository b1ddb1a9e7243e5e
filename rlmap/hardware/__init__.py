"""Hardware: one technology node's energy/area table (tech), per-access energies for any buffer size and
word width (energy), and a seeded generator of random but plausible accelerators (generator)."""

from rlmap.hardware.energy import (
    dram_access_energy,
    mac_area,
    mac_energy,
    register_access_energy,
    sram_access_energy,
    sram_area,
    storage_access_energy,
)

__all__ = [
    "dram_access_energy",
    "mac_area",
    "mac_energy",
    "register_access_energy",
    "sram_access_energy",
    "sram_area",
    "storage_access_energy",
]
