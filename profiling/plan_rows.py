"""What ``acom plan`` answers: one ``Row`` per cut and n_q, and the ``Plan`` around them (table, JSON and plot
read these)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One configuration: a cut and a number of stages, its costs on the board and whether it fits."""

    cut: int
    block: str  # class of block L
    n_q: int
    own_cut: bool  # the checkpoint's cut (its trained RVQ); False: the RVQ would be retrained there
    frame_rate: float  # frames per second at the cut
    cut_dim: int
    bps: float  # nominal bit/s: frame rate x sum(log2 K) over the n_q stages
    macs: dict  # per second of audio: frontend, blocks, rvq, total
    ram_bytes: int
    flash_bytes: int
    instructions_per_s: float | None
    clock_share: float | None  # instructions / clock (one instruction per cycle)
    energy_uj_per_s: dict
    over: list[str]  # budgets it exceeds (empty: fits in real time)
    radio: dict | None = None  # with --link: the link's cost of these codes (profiling.energy.radio), watts
    run: dict | None = None  # {"metric", "value", "bps", "source"} of a matching trained run
    front: bool = False  # on the Pareto front

    @property
    def fits(self) -> bool:
        return not self.over

    @property
    def cost(self) -> float:
        """What "cheapest" ranks by: energy per second (clock share) where known, else MACs."""
        e = self.energy_uj_per_s.get("clock_share")
        return e if e is not None else self.macs["total"]

    def name(self) -> str:
        return f"cut {self.cut} n_q {self.n_q}"


@dataclass
class Plan:
    checkpoint: str
    task: str
    board: dict
    own_cut: int
    codebook_sizes: list[int]
    code_dim: int
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    front_axes: list[str] = field(default_factory=list)
    recommendation: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for r, row in zip(d["rows"], self.rows):
            r["fits"] = row.fits
        return d
