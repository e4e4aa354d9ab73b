"""Layer version resource policies as plain data: the statements this tool writes and
reads back. No boto3 here: :mod:`layer_builder.aws.clients` makes the calls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

GET_LAYER_VERSION = "lambda:GetLayerVersion"


@dataclass(frozen=True)
class Statement:
    """One AddLayerVersionPermission statement."""

    statement_id: str
    principal: str = "*"
    organization_id: str | None = None
    action: str = GET_LAYER_VERSION

    def grants(self) -> tuple[str, str | None, str]:
        """What the statement allows, whatever its id: (principal, organization id, action)."""
        return self.principal, self.organization_id, self.action


def _principal(raw: object) -> str:
    # "*", "123456789012", {"AWS": "arn:aws:iam::123456789012:root"} or {"AWS": "*"}
    if isinstance(raw, dict):
        raw = raw.get("AWS", "")
    if isinstance(raw, list):
        raw = raw[0] if len(raw) == 1 else ",".join(map(str, raw))
    text = str(raw)
    m = re.match(r"^arn:aws[a-z-]*:iam::(\d{12}):root$", text)
    return m.group(1) if m else text


def parse_policy(text: str | None) -> list[Statement]:
    """A layer version's resource policy as statements (organization id from either the
    statement itself or its ``aws:PrincipalOrgID`` condition, as Lambda writes it)."""
    try:
        policy = json.loads(text or "{}")
    except ValueError:
        return []
    out = []
    for st in policy.get("Statement", []) if isinstance(policy, dict) else []:
        if not isinstance(st, dict):
            continue
        org = st.get("OrganizationId")
        condition = st.get("Condition")
        if not org and isinstance(condition, dict):
            for block in condition.values():
                if isinstance(block, dict) and "aws:PrincipalOrgID" in block:
                    org = block["aws:PrincipalOrgID"]
        action = st.get("Action", "")
        if isinstance(action, list):
            action = action[0] if len(action) == 1 else ",".join(map(str, action))
        out.append(
            Statement(str(st.get("Sid")), _principal(st.get("Principal")), org or None, str(action))
        )
    return out
