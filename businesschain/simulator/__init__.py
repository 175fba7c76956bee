"""A simulator of the business chains (上证链, 深证链, 证联链) that feed the supervision chain.

Pure generation, no Django: `world` builds one market (entities, listings, accounts, layered
shareholding registries, roles, concert parties) from a seed; `stream` turns it into each chain's
transactions, with `patterns` planting what regulators hunt; `chain` signs blocks with four SM2
consensus nodes (quorum three) and keeps the head; `client` speaks ECP/1 over HTTP. The
`simulate_chains` management command wires them to a running server.
"""

CHAIN_NAMES = {"sse": "上证链", "szse": "深证链", "sac": "证联链"}
