"""Platform linkage: the 工单 / 警单 documents exchanged between 12345 and 110.

`codes` validates the codes an order carries (GB/T 2260 divisions, GB 32100 unified
social credit codes, police incident classes); `order` holds the v1 JSON Schema,
`validate_order`, the builder from a call's ticket context and the status machine
(pure: no network, no database); `auth` signs and checks the peers' requests.
Format: docs/linkage.md.
"""
