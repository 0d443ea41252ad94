#!/usr/bin/env bash
# The build half of the test cluster (scripts/cluster.sh is the run half): downloads the Debian
# packages (a private apt setup, nothing installed) and builds Kubernetes' binaries and the
# pause image into $CODEBUILDER_K8S_CACHE/SOURCE-VERSION (default
# /var/cache/codebuilder-k8s/1.20.5+really1.20.2-1.1+deb12u1), Go cache included. A second build
# is a no-op; concurrent builds wait for one another (a lock under the cache).
#
# Usage: scripts/cluster-build.sh   (or scripts/cluster.sh build)
set -euo pipefail
export PATH="$PATH:/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin"
export LC_ALL=C
. "$(dirname "$0")/cluster-common.sh"

# One deb822 stanza per archive of the machine's own apt sources (deb and deb-src), for
# bookworm, -updates, -backports and -security.
write_apt_sources() {
  local codename main security keyring
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ "$codename" = bookworm ] ||
    die "this machine is Debian '${codename:-unknown}', cluster.sh builds from bookworm's kubernetes source package: run it on Debian 12"
  # URI SUITE pairs from one-line and deb822 sources.
  local pairs
  pairs=$(
    {
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i+1) }'
      for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") { n = split(uris, u, " "); m = split(suites, s, " "); for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) print u[a], s[b] } types = uris = suites = ""; enabled = "" }
             /^[ \t]*$/ { flush(); next }
             /^#/ { next }
             tolower($1) == "types:" { $1 = ""; types = $0 }
             tolower($1) == "uris:" { $1 = ""; uris = $0 }
             tolower($1) == "suites:" { $1 = ""; suites = $0 }
             tolower($1) == "enabled:" { enabled = tolower($2) }
             END { flush() }' "$f"
      done
    } | sed 's#/*$##'
  )
  main=$(awk -v s="$codename" '$2 == s { print $1; exit }' <<<"$pairs" | sed 's#/*$##')
  security=$(awk -v s="$codename-security" '$2 == s || $2 == s "/updates" { print $1; exit }' <<<"$pairs")
  [ -n "$main" ] || die "no '$codename' suite in /etc/apt/sources.list{,.d}: add Debian's archive to apt's sources"
  [ -n "$security" ] || security=$(sed 's#/debian$#/debian-security#' <<<"$main")
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "$keyring is missing: install debian-archive-keyring"
  mkdir -p "$W/apt/etc" "$W/apt/lists/partial" "$W/apt/cache/archives/partial"
  cat >"$W/apt/etc/debian.sources" <<EOF
Types: deb deb-src
URIs: $main
Suites: $codename $codename-updates $codename-backports
Components: main
Signed-By: $keyring

Types: deb deb-src
URIs: $security
Suites: $codename-security
Components: main
Signed-By: $keyring
EOF
}

papt() {
  apt-get -q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$W/apt/etc" \
    -o "Dir::State::Lists=$W/apt/lists" -o "Dir::Cache=$W/apt/cache" "$@"
}

fetch_packages() {
  [ -f "$W/stamps/fetched" ] && return
  say "downloading Debian packages into $W (private apt setup, nothing installed)"
  write_apt_sources
  local log=$W/logs/apt.log
  papt update >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "apt-get update of the private sources failed (log: $log)"
  }
  rm -rf "$W/debs" && mkdir -p "$W/debs"
  (cd "$W/debs" && papt download golang-1.19-go golang-1.19-src etcd-server etcd-client \
    containernetworking-plugins golang-github-modern-go-reflect2-dev) >>"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "apt-get download failed (log: $log)"
  }
  (cd "$W/debs" && papt source --download-only "kubernetes=$K8S_SOURCE_VERSION") >>"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "cannot download the source package kubernetes=$K8S_SOURCE_VERSION (log: $log): if Debian replaced it, set K8S_SOURCE_VERSION in scripts/cluster.sh to the version 'apt-cache showsrc kubernetes' lists"
  }
  local reflect2
  reflect2=$(dpkg-deb -f "$W"/debs/golang-github-modern-go-reflect2-dev_*.deb Version)
  case "$reflect2" in
    1.0.2*) ;;
    *) die "golang-github-modern-go-reflect2-dev is $reflect2, the build needs 1.0.2 (the vendored 1.0.1 crashes with Go >= 1.18)" ;;
  esac
  rm -rf "$W/x" && mkdir -p "$W/x"
  dpkg -x "$W"/debs/golang-1.19-go_*.deb "$W/x/go"
  dpkg -x "$W"/debs/golang-1.19-src_*.deb "$W/x/go"
  dpkg -x "$W"/debs/etcd-server_*.deb "$W/x/etcd"
  dpkg -x "$W"/debs/etcd-client_*.deb "$W/x/etcd"
  dpkg -x "$W"/debs/containernetworking-plugins_*.deb "$W/x/cni"
  dpkg -x "$W"/debs/golang-github-modern-go-reflect2-dev_*.deb "$W/x/reflect2"
  touch "$W/stamps/fetched"
}

unpack_source() {
  [ -f "$W/stamps/source" ] && return
  say "unpacking and patching kubernetes $K8S_SOURCE_VERSION"
  rm -rf "$W/src"
  dpkg-source -x "$W/debs/kubernetes_$K8S_SOURCE_VERSION.dsc" "$W/src" >>"$W/logs/source.log" 2>&1 || {
    tail -n 20 "$W/logs/source.log" >&2
    die "dpkg-source -x failed (log: $W/logs/source.log)"
  }
  # The kubelet warns about host sysctls instead of rewriting them (1.20 has no such setting).
  local cm=$W/src/pkg/kubelet/cm/container_manager_linux.go
  sed -i 's/^\tb := KernelTunableModify$/\tb := KernelTunableWarn/' "$cm"
  grep -q $'^\tb := KernelTunableWarn$' "$cm" ||
    die "the kubelet patch did not apply to $cm (line 'b := KernelTunableModify' not found)"
  # The vendored reflect2 1.0.1 crashes with Go >= 1.18; Debian's 1.0.2 does not.
  local r2=$W/src/vendor/github.com/modern-go/reflect2
  rm -f "$r2"/*.go "$r2"/*.s
  cp "$W"/x/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2/"
  touch "$W/stamps/source"
}

go_env() {
  export GOROOT=$W/x/go/usr/lib/go-1.19
  export PATH=$GOROOT/bin:$PATH
  export GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
  export GOPATH=$W/gopath GOCACHE=$W/gocache
  mkdir -p "$GOPATH/src/k8s.io"
  ln -sfn "$W/src" "$GOPATH/src/k8s.io/kubernetes"
}

generate_openapi() {
  [ -f "$W/stamps/openapi" ] && return
  say "generating pkg/generated/openapi"
  local k=$GOPATH/src/k8s.io/kubernetes log=$W/logs/openapi.log
  (cd "$k" && go build -o "$W/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen) >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "building openapi-gen failed (log: $log)"
  }
  # As upstream's Makefile.generated_files: every package with +k8s:openapi-gen= tags, staging
  # seen through vendor/.
  local dirs list=$W/logs/openapi-files
  (cd "$k" &&
    find . -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) -type f -name '*.go' |
    sed 's#^\./##; s#^staging/src/#vendor/#' >"$list.all")
  # grep exits 1 when a batch has no match: not an error here.
  (cd "$k" && xargs -a "$list.all" grep -l '^// *+k8s:' >"$list.tagged") || true
  (cd "$k" && xargs -a "$list.tagged" grep -l '+k8s:openapi-gen=' >"$list.openapi") || true
  dirs=$(xargs -a "$list.openapi" -n1 dirname | sort -u |
    grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
    sed 's#^#k8s.io/kubernetes/#' | paste -sd, -)
  [ -n "$dirs" ] || die "no +k8s:openapi-gen= packages found in $W/src"
  (cd "$k" && "$W/bin/openapi-gen" --logtostderr -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    -r "$W/logs/openapi-violations.list") >>"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "openapi-gen failed (log: $log)"
  }
  diff -u "$W/src/api/api-rules/violation_exceptions.list" "$W/logs/openapi-violations.list" >>"$log" ||
    die "openapi-gen's API rule report differs from api/api-rules/violation_exceptions.list (log: $log)"
  touch "$W/stamps/openapi"
}

build_binaries() {
  local v ldflags="-s -w" c log=$W/logs/go-build.log
  for v in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
    k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$K8S_GIT_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20"
    ldflags+=" -X $v.gitCommit=$K8S_GIT_COMMIT -X $v.gitTreeState=archive"
  done
  for c in "${COMPONENTS[@]}"; do
    [ -x "$W/bin/$c" ] && continue
    say "building $c (Go $(go env GOVERSION); the first build takes minutes)"
    (cd "$GOPATH/src/k8s.io/kubernetes" &&
      go build -trimpath -tags providerless,selinux,notest -ldflags "$ldflags" -o "$W/bin/$c.tmp" "./cmd/$c") \
      >>"$log" 2>&1 || {
      tail -n 20 "$log" >&2
      die "go build of $c failed (log: $log)"
    }
    mv "$W/bin/$c.tmp" "$W/bin/$c"
  done
}

# The pause image cannot be pulled: a static build of upstream's pause.c as a one-layer OCI
# archive for `ctr images import`.
build_pause() {
  [ -f "$W/pause.tar" ] && return
  say "building $PAUSE_IMAGE"
  local t=$W/pause.build
  rm -rf "$t" && mkdir -p "$t/rootfs" "$t/oci/blobs/sha256"
  gcc -Os -Wall -Werror -static -DVERSION=v3.4-debian -o "$t/rootfs/pause" \
    "$W/src/build/pause/linux/pause.c" >"$W/logs/pause.log" 2>&1 || {
    tail -n 20 "$W/logs/pause.log" >&2
    die "compiling the static pause binary failed (log: $W/logs/pause.log; needs gcc and libc6-dev)"
  }
  tar -C "$t/rootfs" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$t/layer.tar" pause
  local layer config manifest
  layer=$(sha256sum "$t/layer.tar" | cut -d' ' -f1)
  cp "$t/layer.tar" "$t/oci/blobs/sha256/$layer"
  printf '%s' '{"architecture":"amd64","os":"linux","config":{"User":"65535:65535","Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:'"$layer"'"]}}' >"$t/config.json"
  config=$(sha256sum "$t/config.json" | cut -d' ' -f1)
  cp "$t/config.json" "$t/oci/blobs/sha256/$config"
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config"'","size":'"$(stat -c %s "$t/config.json")"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'"$layer"'","size":'"$(stat -c %s "$t/layer.tar")"'}]}' >"$t/manifest.json"
  manifest=$(sha256sum "$t/manifest.json" | cut -d' ' -f1)
  cp "$t/manifest.json" "$t/oci/blobs/sha256/$manifest"
  printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest"'","size":'"$(stat -c %s "$t/manifest.json")"',"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"'"$PAUSE_IMAGE"'","org.opencontainers.image.ref.name":"3.4"}}]}' >"$t/oci/index.json"
  printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$t/oci/oci-layout"
  tar -C "$t/oci" --owner=0 --group=0 --numeric-owner -cf "$W/pause.tar.tmp" oci-layout index.json blobs
  mv "$W/pause.tar.tmp" "$W/pause.tar"
  rm -rf "$t"
}

build() {
  [ -f "$W/stamps/built" ] && return
  ensure_host_tools
  mkdir -p "$CACHE_ROOT"
  exec 8>"$CACHE_ROOT/build.lock"
  flock 8
  # Another build may have finished while this one waited for the lock.
  if [ ! -f "$W/stamps/built" ]; then
    local started=$SECONDS
    mkdir -p "$W/stamps" "$W/logs" "$W/bin"
    fetch_packages
    unpack_source
    go_env
    generate_openapi
    build_binaries
    build_pause
    touch "$W/stamps/built"
    say "built Kubernetes $K8S_GIT_VERSION into $W in $((SECONDS - started)) s"
  fi
  exec 8>&-
}

build
