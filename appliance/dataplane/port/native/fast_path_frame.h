// What the kernel fast path (fast_path.bpf.c) and its loader (fast_path.cc) share: the layouts of
// its maps, and the one parser that turns a frame's first bytes into the key of its flow direction.
// Compiled into both, so the key the dataplane installs for a frame it decided is byte for byte the
// key the kernel derives from the next frame of that direction. The parser accepts only frames the
// dataplane's decoder (decode/) takes without error and keys the same way: one VLAN tag at most,
// IPv4 without options or fragments, IPv6 without extension headers or mapped addresses, TCP or UDP
// with sane lengths, or an ICMP/ICMPv6 echo request or reply (keyed by its identifier, as the
// engine keys echo flows, and by its type and code, so each direction only matches its own kind). Anything else is "not offloadable" and goes to the dataplane as before, so the
// fast path can only ever carry less than the dataplane would, never something it would refuse.
// Must hold no logic beyond that parse: no map access, no policy.

#ifndef GATEKEEPER_FAST_PATH_FRAME_H
#define GATEKEEPER_FAST_PATH_FRAME_H

#include <linux/types.h>

#define FP_FAMILY_V4 4
#define FP_FAMILY_V6 6
#define FP_ICMP 1
#define FP_TCP 6
#define FP_UDP 17
#define FP_ICMPV6 58
// Set in fp_key.vlan when the frame carried a tag (VLAN 0, priority tagged, differs from untagged).
#define FP_TAGGED 0x8000
#define FP_TCP_FIN 0x01
#define FP_TCP_SYN 0x02
#define FP_TCP_RST 0x04

// One direction of a flow as it arrives on one port. 44 bytes, no padding: hashed as bytes.
struct fp_key {
  __u32 ifindex;  // the port it arrives on
  __u16 vlan;     // FP_TAGGED | VLAN id, or 0 untagged
  __u8 family;
  __u8 proto;
  __u16 sport;    // network byte order, as in the frame; an echo's identifier
  __u16 dport;    // an echo's type and code
  __u8 src[16];   // IPv4: the first 4 bytes, the rest zero
  __u8 dst[16];
};

// What the kernel does with a direction the dataplane offloaded.
struct fp_entry {
  __u32 slot;        // index into the slot counters (one slot per flow)
  __u32 egress;      // ifindex the frames leave by
  __u32 generation;  // the fast path's generation when installed: stale after a policy change
  __u8 dir;          // 0: initiator to responder, 1: back
  __u8 port;         // 0 inside, 1 outside (the per-port counters)
  __u8 macs[12];     // destination and source MAC the dataplane saw: another one goes to the dataplane
  __u8 pad[2];
};

// Per flow, per direction, what the kernel forwarded: read by the dataplane through a shared mapping.
struct fp_slot {
  __u64 packets[2];  // wire segments, as the dataplane counts packets of super-frames
  __u64 bytes[2];    // wire bytes
  __u64 last_ns[2];  // CLOCK_MONOTONIC of the last frame
};

// Per port (per CPU): what the kernel forwarded from it.
struct fp_port {
  __u64 frames;
  __u64 frame_bytes;  // as the dataplane's rx_bytes count them (a restored tag included)
  __u64 segments;
};

struct fp_config {
  __u32 generation;
  __u32 secret;  // random per load: the token the filter leaves for the redirect program
  __u32 enabled;
  __u32 pad;
};

// What fp_parse found besides the key.
struct fp_frame {
  struct fp_key key;
  __u8 macs[12];        // destination and source MAC
  __u32 payload_bytes;  // L4 payload: a super-frame's later segments repeat the rest
  __u8 tcp_flags;
};

// Loops over a header's bytes are unrolled for BPF: an index register added to a buffer's address
// is pointer arithmetic the unprivileged verifier refuses.
#ifdef __clang__
#define FP_UNROLL _Pragma("unroll")
#else
#define FP_UNROLL
#endif

static inline __u16 fp_read16(const __u8 *b) {
  return (__u16)((b[0] << 8) | b[1]);
}

// Parses the frame `ctx` stands for (wire_len bytes without a tag held beside it; meta_tagged and
// meta_vid: such a tag). The includer defines FP_CTX and fp_load(ctx, offset, to, bytes), 0 when
// the bytes were there. Each header is loaded into a buffer of its own and read at fixed offsets
// only: the verifier of a dataplane without CAP_PERFMON refuses pointer arithmetic with offsets
// that differ from path to path. Returns 0 when the frame is offloadable, else a small number
// saying why not.
static inline int fp_parse(FP_CTX ctx, __u32 wire_len, int meta_tagged, __u16 meta_vid, struct fp_frame *out) {
  __u8 eth[18];
  __u8 ip[40];
  __u8 l4h[20];
  __u32 l3 = 14;
  __u16 type;
  __u16 vlan = 0;
  if (fp_load(ctx, 0, eth, 14) != 0) return 1;
  type = fp_read16(eth + 12);
  if (meta_tagged) vlan = FP_TAGGED | (meta_vid & 0x0fff);
  if (type == 0x8100 || type == 0x88a8 || type == 0x9100) {
    if (meta_tagged || fp_load(ctx, 14, eth + 14, 4) != 0) return 2;  // two tags, or cut short
    vlan = FP_TAGGED | (fp_read16(eth + 14) & 0x0fff);
    type = fp_read16(eth + 16);
    l3 = 18;
    if (type == 0x8100 || type == 0x88a8 || type == 0x9100) return 2;
  }
  FP_UNROLL for (int i = 0; i < 12; i++) out->macs[i] = eth[i];
  __u32 l4;
  __u32 ip_end;
  __u8 proto;
  out->key.vlan = vlan;
  if (type == 0x0800) {
    if (fp_load(ctx, l3, ip, 20) != 0) return 3;
    if (ip[0] != 0x45) return 3;  // version 4 without options
    __u32 total = fp_read16(ip + 2);
    if (total < 20 || l3 + total > wire_len) return 3;
    if ((fp_read16(ip + 6) & 0x3fff) != 0) return 4;  // a fragment
    proto = ip[9];
    out->key.family = FP_FAMILY_V4;
    FP_UNROLL for (int i = 0; i < 16; i++) {
      out->key.src[i] = i < 4 ? ip[12 + i] : 0;
      out->key.dst[i] = i < 4 ? ip[16 + i] : 0;
    }
    l4 = l3 + 20;
    ip_end = l3 + total;
  } else if (type == 0x86dd) {
    if (fp_load(ctx, l3, ip, 40) != 0) return 3;
    if ((ip[0] >> 4) != 6) return 3;
    __u32 payload = fp_read16(ip + 4);
    if (l3 + 40 + payload > wire_len) return 3;
    proto = ip[6];  // no extension headers
    FP_UNROLL for (int i = 0; i < 16; i++) {
      out->key.src[i] = ip[8 + i];
      out->key.dst[i] = ip[24 + i];
    }
    // ::ffff:0:0/96, ten zero bytes and two 0xff, which the decoder refuses. Differences are
    // or-ed together, not branched on: a branch per byte multiplies the verifier's states.
    __u32 src_diff = (ip[18] ^ 0xff) | (ip[19] ^ 0xff);
    __u32 dst_diff = (ip[34] ^ 0xff) | (ip[35] ^ 0xff);
    FP_UNROLL for (int i = 0; i < 10; i++) {
      src_diff |= ip[8 + i];
      dst_diff |= ip[24 + i];
    }
    if (src_diff == 0 || dst_diff == 0) return 3;
    out->key.family = FP_FAMILY_V6;
    l4 = l3 + 40;
    ip_end = l3 + 40 + payload;
  } else {
    return 5;
  }
  out->key.proto = proto;
  int echo = 0;
  if (proto == FP_TCP) {
    if (l4 + 20 > ip_end || fp_load(ctx, l4, l4h, 20) != 0) return 6;
    __u32 header = (__u32)(l4h[12] >> 4) * 4;
    if (header < 20 || l4 + header > ip_end) return 6;
    out->tcp_flags = l4h[13];
    out->payload_bytes = ip_end - l4 - header;
  } else if (proto == FP_UDP) {
    if (l4 + 8 > ip_end || fp_load(ctx, l4, l4h, 8) != 0) return 6;
    __u32 length = fp_read16(l4h + 4);
    if (length < 8 || l4 + length > ip_end) return 6;
    out->tcp_flags = 0;
    out->payload_bytes = length - 8;
  } else if ((proto == FP_ICMP && out->key.family == FP_FAMILY_V4) || (proto == FP_ICMPV6 && out->key.family == FP_FAMILY_V6)) {
    if (l4 + 8 > ip_end || fp_load(ctx, l4, l4h, 8) != 0) return 6;
    __u8 icmp = l4h[0];
    echo = proto == FP_ICMP ? icmp == 8 || icmp == 0 : icmp == 128 || icmp == 129;
    if (!echo) return 7;  // errors quote other flows; the rest is judged packet by packet
    out->tcp_flags = 0;
    out->payload_bytes = ip_end - l4 - 8;
  } else {
    return 5;
  }
  // Ports, or an echo's type and code and its identifier: each word read at its own fixed offset,
  // then chosen as a value (choosing the offset would be the pointer arithmetic the verifier refuses).
  __u16 word0 = (__u16)(l4h[0] | (l4h[1] << 8));
  __u16 word1 = (__u16)(l4h[2] | (l4h[3] << 8));
  __u16 word2 = (__u16)(l4h[4] | (l4h[5] << 8));
  out->key.sport = echo ? word2 : word0;
  out->key.dport = echo ? word0 : word1;
  return 0;
}

#endif
