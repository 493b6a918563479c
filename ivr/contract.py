"""The contract between IVR flows and the dialplan (see docs/ivr.md).

A flow ends by setting the ticket context variables (inherited `__TICKET_*`) and
HOTLINE_DEST to one of DESTINATIONS. The dialplan then runs
`Goto(hotline-route,${HOTLINE_DEST},1)`, and sends the caller to the node's own
queue when HOTLINE_DEST is empty (FastAGI down, flow crashed before the end).
"""

from __future__ import annotations

DEST_VAR = "HOTLINE_DEST"

QUEUE = "queue"  # the node's own queue
POLICE = "110"
FIRE = "119"
MEDICAL = "120"
TRAFFIC = "122"
HOTLINE = "12345"  # cross-platform diversion over the trunk
DONE = "done"  # served by self-service or callback: goodbye and hang up

DESTINATIONS = (QUEUE, POLICE, FIRE, MEDICAL, TRAFFIC, HOTLINE, DONE)
