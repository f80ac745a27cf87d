"""Why no path could be designed: machine codes with an English and a Chinese sentence each."""
from __future__ import annotations

from typing import Any

from resource_mgr.errors import NoCapacity

# code -> (English, Chinese); "{tech}" is the technology
REASONS: dict[str, tuple[str, str]] = {
    "no_serving_box": ("no {medium} box serves this address", "該地址沒有{medium_zh}覆蓋的分線盒/光分纖箱"),
    "box_full": ("the serving box has no free port", "覆蓋的分線盒/光分纖箱沒有空閒端口"),
    "box_locked": ("the serving box's ports are locked by a cutover", "覆蓋的分線盒/光分纖箱端口已被割接封鎖"),
    "locked": ("a unit on the path is locked by a cutover", "路由上的資源已被割接封鎖"),
    "not_wired": ("the free box ports are not wired to the network (expansion needed)",
                  "空閒端口未接通上聯（需擴容）"),
    "splitter_full": ("the splitter behind the box has no free port", "分光器沒有空閒端口"),
    "fibre_full": ("no free fibre core towards the OLT", "上聯光纖纖芯已佔滿"),
    "pon_full": ("the PON port behind the box is full", "上聯PON口已滿"),
    "cable_full": ("no free copper pair towards the exchange", "上聯電纜線對已佔滿"),
    "no_head_port": ("no free {tech} port at the exchange", "局端沒有空閒的{tech}端口"),
    "budget": ("the optical budget does not close", "光功率預算不足"),
    "loop_too_long": ("the copper loop is too long for {tech} at the rate asked",
                      "銅纜線路過長，{tech}無法達到所需速率"),
    "no_lan_switch": ("no LAN switch in the building", "該樓宇沒有LAN交換機"),
    "unavailable_unit": ("a unit on the path is locked, faulty, reserved or held", "路由上的資源被封鎖、故障、預留或佔用"),
    "no_address": ("the address is unknown", "地址不存在"),
}
MEDIUM_ZH = {"fibre": "光纖", "copper": "銅纜"}

# what blocks a path, by the kind of unit where it stops (customer side first)
BLOCKED_BY_KIND = {
    "box_port": "box_full", "splitter_out": "splitter_full", "splitter_in": "splitter_full",
    "core": "fibre_full", "pon_port": "pon_full", "pair": "cable_full",
    "dsl_port": "no_head_port", "line_port": "no_head_port", "eth_port": "no_head_port",
}


def sentence(code: str, **fmt: Any) -> tuple[str, str]:
    en, zh = REASONS.get(code, (code, code))
    fmt.setdefault("tech", "")
    fmt.setdefault("medium", "")
    fmt["medium_zh"] = MEDIUM_ZH.get(fmt["medium"], fmt["medium"])
    return en.format(**fmt), zh.format(**fmt)


class NoDesign(NoCapacity):
    """No complete path now: `extra` carries reason_zh, reasons (codes) and alternatives."""

    def __init__(self, technology: str, reasons: list[str], *, alternatives: list[dict[str, Any]] | None = None,
                 box_id: str | None = None, **fmt: Any) -> None:
        reasons = list(dict.fromkeys(reasons)) or ["no_serving_box"]
        texts = [sentence(code, **fmt) for code in reasons]
        detail = f"no {technology} path: " + "; ".join(en for en, _ in texts)
        reason_zh = f"無法設計{technology}路由：" + "；".join(zh for _, zh in texts)
        super().__init__(detail, field="address_id", reason_zh=reason_zh, reasons=reasons,
                         alternatives=list(alternatives or []), technology=technology, box_id=box_id)
        self.technology = technology

    @property
    def reasons(self) -> list[str]:
        return self.extra["reasons"]

    @property
    def reason_zh(self) -> str:
        return self.extra["reason_zh"]

    @property
    def alternatives(self) -> list[dict[str, Any]]:
        return self.extra["alternatives"]
