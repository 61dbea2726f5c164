# syntax=docker/dockerfile:1
# The k8s-dataplane image: kube-proxy-rs, bgpd and diag, with the userspace tools they run.
#
#   docker build -t k8s-dataplane:0.1.0 .                          # the image deploy/ uses
#   docker build --target bgpd-distroless -t bgpd:0.1.0 .          # bgpd alone, no shell
#
# Why the default image is Debian slim and not distroless: kube-proxy-rs writes its rules with
# iptables-restore / ip6tables-restore (legacy and nft variants), nft and ipset, and diag reads
# with iptables-save, nft, ip, conntrack and ipvsadm. Those are dynamically linked programs
# with their own libraries (libxtables, libnftnl, libmnl, libnetfilter_conntrack, ...) that a
# distroless base does not carry, and they must match what Debian ships together. bgpd needs
# none of them (rtnetlink and its sockets only), so it also builds on distroless/cc; the
# chart's init container still needs the default image (it runs sh and sed).
#
# Everything builds on Debian 12 (bookworm) so the binaries' glibc matches both runtimes.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# bgpd's allocator (tikv-jemalloc-sys) builds jemalloc with make, which the slim image lacks.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# ring (TLS for the Kubernetes client) needs a C compiler: the rust slim image has gcc.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kube-proxy-rs --bin bgpd --bin diag \
 && mkdir -p /out \
 && cp target/release/kube-proxy-rs target/release/bgpd target/release/diag /out/

FROM gcr.io/distroless/cc-debian12 AS bgpd-distroless
# root: Kubernetes gives added capabilities (NET_ADMIN, NET_BIND_SERVICE) to root only
COPY --from=builder /out/bgpd /usr/local/bin/bgpd
ENTRYPOINT ["/usr/local/bin/bgpd"]

FROM debian:bookworm-slim AS runtime
# Unpinned on purpose: Debian's stable updates are security fixes to these very tools.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      iptables ipset conntrack nftables iproute2 ipvsadm kmod \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/kube-proxy-rs /out/bgpd /out/diag /usr/local/bin/
