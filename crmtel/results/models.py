"""The results a manager may pick for a call (pure)."""

from __future__ import annotations

from dataclasses import dataclass

# The codes the catalogues name (page.result.* and report.result.*); other configured texts are shown as written.
BUILT_IN = ("talked", "agreed", "callback", "not_interested", "no_answer", "wrong_number")


@dataclass(frozen=True, slots=True)
class ResultChoices:
    """The configured results, in their order."""

    codes: tuple[str, ...]

    def allows(self, code: str) -> bool:
        """Whether ``code`` is one of the configured results."""
        return code in self.codes
