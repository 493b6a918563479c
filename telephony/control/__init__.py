"""Call control: one-key/warm transfer, three-party, pull-in, supervisor actions.

Pure state machines (blind, warm, conference, supervisor) driven by AMI events,
AMI action builders (actions), and the Controller that serialises, authorises
and de-duplicates them. See docs/control.md for the dialplan contract.
"""
