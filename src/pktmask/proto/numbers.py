"""Protocol numbers above the link layer, by name (``Final``: inlined when compiled).

Link types and EtherTypes live in ``link.py``. Sources: the IANA registries of
IP protocol numbers, IPv4 and IPv6 option numbers, ICMP/ICMPv6 types and TCP
option kinds, as cited field by field in docs/policy.md.
"""

from __future__ import annotations

from typing import Final

# IP protocol numbers / IPv6 next headers.
IP_HOPOPTS: Final = 0
IP_ICMP: Final = 1
IP_IGMP: Final = 2
IP_IPIP: Final = 4
IP_TCP: Final = 6
IP_UDP: Final = 17
IP_DCCP: Final = 33
IP_IPV6: Final = 41
IP_ROUTING: Final = 43
IP_FRAGMENT: Final = 44
IP_GRE: Final = 47
IP_ESP: Final = 50
IP_AH: Final = 51
IP_ICMPV6: Final = 58
IP_NONE: Final = 59
IP_DSTOPTS: Final = 60
IP_UDPLITE: Final = 136
IP_MOBILITY: Final = 135
IP_HIP: Final = 139
IP_SHIM6: Final = 140

# IPv4 options.
IPOPT_EOL: Final = 0
IPOPT_NOP: Final = 1
IPOPT_RR: Final = 7
IPOPT_TS: Final = 68
IPOPT_LSRR: Final = 131
IPOPT_SSRR: Final = 137
IPOPT_RA: Final = 148
IPOPT_TS_TSONLY: Final = 0
IPOPT_TS_TSANDADDR: Final = 1
IPOPT_TS_PRESPEC: Final = 3

# IPv6 hop-by-hop / destination options.
IP6OPT_PAD1: Final = 0
IP6OPT_PADN: Final = 1
IP6OPT_RA: Final = 5
IP6OPT_JUMBO: Final = 0xC2
IP6OPT_HOME: Final = 201

# IPv6 routing header types.
RT_TYPE0: Final = 0
RT_MIP6: Final = 2
RT_SRH: Final = 4

# ICMP types.
ICMP_ECHOREPLY: Final = 0
ICMP_UNREACH: Final = 3
ICMP_SOURCEQUENCH: Final = 4
ICMP_REDIRECT: Final = 5
ICMP_ECHO: Final = 8
ICMP_TIMXCEED: Final = 11
ICMP_PARAMPROB: Final = 12
ICMP_TSTAMP: Final = 13
ICMP_TSTAMPREPLY: Final = 14
ICMP_ERRORS: Final = frozenset({ICMP_UNREACH, ICMP_SOURCEQUENCH, ICMP_REDIRECT, ICMP_TIMXCEED, ICMP_PARAMPROB})
ICMP_UNREACH_NEEDFRAG: Final = 4  # code: bytes 6..7 carry the next-hop MTU
# Types whose second word (identifier/sequence, router advert counts) is defined.
ICMP_KEEP_WORD: Final = frozenset({ICMP_ECHOREPLY, ICMP_ECHO, 9, 15, 16, 17, 18})

# ICMPv6 types.
ICMP6_UNREACH: Final = 1
ICMP6_TOOBIG: Final = 2
ICMP6_PARAMPROB: Final = 4
ICMP6_ECHO_REQUEST: Final = 128
ICMP6_ECHO_REPLY: Final = 129
MLD_QUERY: Final = 130
MLD_REPORT: Final = 131
MLD_DONE: Final = 132
ND_RS: Final = 133
ND_RA: Final = 134
ND_NS: Final = 135
ND_NA: Final = 136
ND_REDIRECT: Final = 137
MLD2_REPORT: Final = 143
# Where the options of each Neighbor Discovery message start.
ND_OPTIONS_AT: Final = {ND_RS: 8, ND_RA: 16, ND_NS: 24, ND_NA: 24, ND_REDIRECT: 40}

# Neighbor Discovery options.
NDOPT_SLLA: Final = 1
NDOPT_TLLA: Final = 2
NDOPT_PREFIX: Final = 3
NDOPT_REDIRECTED: Final = 4
NDOPT_MTU: Final = 5
NDOPT_RDNSS: Final = 25

# IGMP types.
IGMP_QUERY: Final = 0x11
IGMP_V3_REPORT: Final = 0x22
# v1/v2 messages of 8 bytes: type, max response, checksum, group.
IGMP_GROUP_MESSAGES: Final = frozenset({IGMP_QUERY, 0x12, 0x16, 0x17})

# TCP options.
TCPOPT_EOL: Final = 0
TCPOPT_NOP: Final = 1
TCPOPT_MSS: Final = 2
TCPOPT_WSCALE: Final = 3
TCPOPT_SACK_PERMITTED: Final = 4
TCPOPT_SACK: Final = 5
TCPOPT_TIMESTAMP: Final = 8
TCPOPT_MPTCP: Final = 30
MPTCP_ADD_ADDR: Final = 3

# TCP/UDP ports with an encapsulation behind them.
UDP_VXLAN: Final = 4789
UDP_GTPU: Final = 2152
UDP_TEREDO: Final = 3544
UDP_AYIYA: Final = 5072
UDP_GENEVE: Final = 6081
