"""The link model: what one subchannel carries at a given gain and power (docs/system-model.md).

Every rate in the package comes from here: the latency, the optimizers, the codecs and the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenario import Scenario


def dbm_to_w(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


@dataclass(frozen=True)
class Radio:
    """Radio constants of a scenario.

    Attributes:
        bw_hz: bandwidth W of one subchannel, Hz.
        noise_psd_w_per_hz: noise power spectral density N0, W/Hz.
        noise_w: noise power of one subchannel, N0 W, W.
        server_power_w: the server's downlink power per subchannel Ps, W.
    """

    bw_hz: float
    noise_psd_w_per_hz: float
    noise_w: float
    server_power_w: float

    @classmethod
    def of(cls, scenario: Scenario) -> "Radio":
        bw = float(scenario.channel.subchannel_bw_hz)
        psd = dbm_to_w(scenario.channel.noise_psd_dbm_per_hz)
        return cls(bw, psd, psd * bw, float(scenario.server.power_per_subchannel_w))

    @property
    def inv_noise(self) -> float:
        """1 / (N0 W): the uplink SNR of a subchannel per unit of power x gain."""
        return 1.0 / self.noise_w

    @property
    def down_snr(self) -> float:
        """Ps / (N0 W): the downlink SNR of a subchannel per unit gain."""
        return self.server_power_w / self.noise_w

    def uplink_se(self, gains: np.ndarray, power_w: np.ndarray | float) -> np.ndarray:
        """Spectral efficiency log2(1 + p g / (N0 W)) of uplink subchannels, bit/s/Hz, elementwise."""
        return np.log2(1.0 + power_w * gains * self.inv_noise)

    def downlink_se(self, gains: np.ndarray) -> np.ndarray:
        """Spectral efficiency log2(1 + Ps g / (N0 W)) of downlink subchannels (reciprocal gains)."""
        return np.log2(1.0 + gains * self.down_snr)

    def subchannel_rate(self, gains: np.ndarray, power_w: np.ndarray | float) -> np.ndarray:
        """Uplink rate of subchannels, bit/s, elementwise."""
        return self.bw_hz * self.uplink_se(gains, power_w)

    def downlink_rate(self, gains: np.ndarray) -> np.ndarray:
        """Downlink rate of subchannels at the server's power, bit/s, elementwise."""
        return self.bw_hz * self.downlink_se(gains)

    def broadcast_rate(self, gains: np.ndarray) -> np.ndarray:
        """R_bc: whole-band downlink rate of the worst client, bit/s; gains [..., N, M] -> [...]."""
        return np.minimum.reduce(np.add.reduce(self.downlink_se(gains), axis=-1), axis=-1) * self.bw_hz


__all__ = ["Radio", "dbm_to_w"]
