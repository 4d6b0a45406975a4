"""The link model: what one subchannel carries at a given gain and power (docs/system-model.md).

Every rate in the package comes from here: the latency, the optimizers, the codecs and the oracle.
A subchannel of bandwidth W at SNR x carries W se(x) bit/s, with

    x = p g / (N0 W F Gamma)             (uplink: the server's noise figure F_s)
    x = Ps g / (N0 W F Gamma)            (downlink, reciprocal gains: the client's noise figure F_c)
    se(x) = min(log2(1 + x), C)          (``channel.small_scale: per-round``: one fading draw per round)
    se(x) = E[min(log2(1 + x |h|^2), C)] (``averaged``: g is the large-scale gain, ``fading.ergodic_se``)

Gamma is the SNR gap (0 dB: Shannon) and C the highest spectral efficiency of the modulation and
coding schemes in use (default: 3GPP NR 256-QAM at code rate 948/1024, 7.40625 bit/s/Hz).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import inf

import numpy as np

from ..resources.waterfill import Link
from .fading import ergodic_se
from .scenario import Scenario


def dbm_to_w(dbm: float) -> float:
    return 10.0 ** ((dbm - 30.0) / 10.0)


def db_to_linear(db: float) -> float:
    return 10.0 ** (db / 10.0)


@dataclass(frozen=True)
class Radio:
    """Radio constants of a scenario.

    Attributes:
        bw_hz: bandwidth W of one subchannel, Hz.
        noise_psd_w_per_hz: thermal noise power spectral density N0, W/Hz.
        noise_w: uplink noise of one subchannel at the server, N0 W F_s, W.
        down_noise_w: downlink noise of one subchannel at a client, N0 W F_c, W.
        server_power_w: the server's downlink power per subchannel Ps, W.
        gap: the SNR gap Gamma (linear, >= 1).
        se_cap: C, bit/s/Hz (inf: uncapped).
        averaged: the ergodic spectral efficiency over fast fading (``small_scale: averaged``).
    """

    bw_hz: float
    noise_psd_w_per_hz: float
    noise_w: float
    down_noise_w: float
    server_power_w: float
    gap: float = 1.0
    se_cap: float = inf
    averaged: bool = False

    @classmethod
    def of(cls, scenario: Scenario) -> "Radio":
        ch = scenario.channel
        bw = float(ch.subchannel_bw_hz)
        psd = dbm_to_w(ch.noise_psd_dbm_per_hz)
        thermal = psd * bw
        return cls(bw, psd, thermal * db_to_linear(ch.noise_figure_server_db),
                   thermal * db_to_linear(ch.noise_figure_client_db), float(scenario.server.power_per_subchannel_w),
                   db_to_linear(ch.snr_gap_db), inf if ch.se_cap_bps_per_hz is None else float(ch.se_cap_bps_per_hz),
                   ch.small_scale == "averaged")

    @property
    def wf_noise_w(self) -> float:
        """N0 W F_s Gamma: the uplink inverse SNR of a subchannel is this over its gain (water-filling)."""
        return self.noise_w * self.gap if self.gap != 1.0 else self.noise_w

    @property
    def inv_noise(self) -> float:
        """1 / (N0 W F_s Gamma): the uplink SNR of a subchannel per unit of power x gain."""
        return 1.0 / self.wf_noise_w

    @property
    def down_snr(self) -> float:
        """Ps / (N0 W F_c Gamma): the downlink SNR of a subchannel per unit gain."""
        return self.server_power_w / (self.down_noise_w * self.gap if self.gap != 1.0 else self.down_noise_w)

    @functools.cached_property
    def link(self) -> Link:
        """The spectral efficiency as water-filling needs it (cap, or the ergodic function)."""
        if self.averaged:
            return Link(cap=inf, se=self.se)
        return Link(cap=self.se_cap)

    def se(self, snr: np.ndarray) -> np.ndarray:
        """Spectral efficiency of subchannels at SNR ``snr`` (after the gap), bit/s/Hz, elementwise."""
        if self.averaged:
            return ergodic_se(snr, self.se_cap)
        out = np.log2(1.0 + snr)
        return np.minimum(out, self.se_cap) if self.se_cap < inf else out

    def uplink_se(self, gains: np.ndarray, power_w: np.ndarray | float) -> np.ndarray:
        """Spectral efficiency of uplink subchannels at powers ``power_w``, bit/s/Hz, elementwise."""
        return self.se(power_w * gains * self.inv_noise)

    def downlink_se(self, gains: np.ndarray) -> np.ndarray:
        """Spectral efficiency of downlink subchannels at the server's power, bit/s/Hz, elementwise."""
        return self.se(gains * self.down_snr)

    def subchannel_rate(self, gains: np.ndarray, power_w: np.ndarray | float) -> np.ndarray:
        """Uplink rate of subchannels, bit/s, elementwise."""
        return self.bw_hz * self.uplink_se(gains, power_w)

    def downlink_rate(self, gains: np.ndarray) -> np.ndarray:
        """Downlink rate of subchannels at the server's power, bit/s, elementwise."""
        return self.bw_hz * self.downlink_se(gains)

    def broadcast_rate(self, gains: np.ndarray) -> np.ndarray:
        """R_bc: whole-band downlink rate of the worst client, bit/s; gains [..., N, M] -> [...]."""
        return np.minimum.reduce(np.add.reduce(self.downlink_se(gains), axis=-1), axis=-1) * self.bw_hz

    def constants(self) -> dict:
        """Every constant of the link, for round traces (recompute a round from its line alone)."""
        return {"subchannel_bw_hz": self.bw_hz, "noise_psd_w_per_hz": self.noise_psd_w_per_hz,
                "uplink_noise_w": self.noise_w, "downlink_noise_w": self.down_noise_w,
                "server_power_per_subchannel_w": self.server_power_w, "snr_gap": self.gap,
                "se_cap_bps_per_hz": None if self.se_cap == inf else self.se_cap,
                "small_scale": "averaged" if self.averaged else "per-round"}


__all__ = ["Radio", "db_to_linear", "dbm_to_w"]
