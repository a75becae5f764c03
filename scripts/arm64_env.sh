#!/usr/bin/env bash
# Prepare an emulated arm64 Python 3.11 that runs a bundle's runner under qemu-aarch64-static; idempotent.
#
# Everything lives under a cache folder, ${EDGESER_ARM64_CACHE:-$HOME/.cache/edgeser-arm64}:
#   debs/      Debian's arm64 packages of Python 3.11 and the C libraries it and the wheels load
#              (apt-get download; this adds the arm64 architecture to dpkg and runs apt-get update if needed)
#   root/      those packages unpacked with dpkg-deb -x: nothing is installed on this machine, no chroot
#   cpu/MODEL/ the root seen by qemu (-L): links to root/ plus a proc/cpuinfo describing the emulated CPU. Debian 12's
#              qemu 7.2 shows an arm64 program the host's x86 /proc/cpuinfo (later qemu releases emulate an arm64
#              one); with it, onnxruntime 1.28 and later segfault on import and ai-edge-litert when it loads a model
#   wheels/    aarch64 wheels (pip download --platform manylinux_*_aarch64 --only-binary=:all:)
#   site/ENGINE-VERSION/   a target's requirements.txt installed from those wheels with pip install --target,
#              with the engine pinned (rpi: onnxruntime; coral: ai-edge-litert)
#   bin/python-ENGINE-VERSION-MODEL   runs root's python3.11 under qemu-aarch64-static with that site and CPU
# A second run with the same inputs reuses everything and needs no network. $PYTHON (default python3) is the
# host Python whose pip fetches the wheels; without pip, a venv for one is made under the cache folder.
#
# Usage (from anywhere):
#   scripts/arm64_env.sh                          # onnxruntime (pinned below) for the rpi bundle, Cortex-A76
#   scripts/arm64_env.sh --cpu cortex-a72         # the Raspberry Pi 4's core instead of the Pi 5's
#   scripts/arm64_env.sh --engine litert          # ai-edge-litert for the coral and android bundles
#   scripts/arm64_env.sh --version 1.27.0         # another onnxruntime (its own site folder)
# The last line printed is EDGESER_ARM64_PYTHON=<wrapper>; run a bundle's self-test with
#   cd BUNDLE && <wrapper> -m runner --self-test
#
# Exit status: 0 ready; 10 something could not be installed or downloaded (no qemu-aarch64-static, no Debian
# arm64 packages, no wheels); 1 everything was installed but the emulated Python cannot import the engine;
# 2 a bad argument.
set -euo pipefail

# The newest onnxruntime, the release the build host runs, so arm64 and x86 run the same code. Without the
# emulated /proc/cpuinfo (cpu/ above), 1.28.0 to 1.32.0 segfault on import under qemu 7.2 and 1.27.0 is the
# newest that runs (docs/rpi.md).
ORT_PIN=1.32.0
LITERT_PIN=2.3.0
PYTHON_DEBS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 libstdc++6 zlib1g
             libexpat1 libffi8 libbz2-1.0 liblzma5 libssl3 libuuid1 libcrypt1 libsqlite3-0
             libncursesw6 libtinfo6 libreadline8)
NO_INSTALL=10
here=$(cd "$(dirname "$0")/.." && pwd)

engine=onnxruntime version="" cpu=cortex-a76
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "arm64_env.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$engine" in
  onnxruntime) package=onnxruntime; version=${version:-$ORT_PIN}; target=rpi; module=onnxruntime ;;
  litert) package=ai-edge-litert; version=${version:-$LITERT_PIN}; target=coral; module=ai_edge_litert.interpreter ;;
  *) echo "arm64_env.sh: --engine is onnxruntime or litert, not '$engine'" >&2; exit 2 ;;
esac
# /proc/cpuinfo of the emulated core: a Raspberry Pi 5's Cortex-A76, or a Cortex-A72 as in a Pi 4 (with the
# crypto extensions qemu's model has and a Pi 4's BCM2711 lacks).
case "$cpu" in
  cortex-a76) midr="0x4 0xd0b 1"
    features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  cortex-a72) midr="0x0 0xd08 3"; features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  *) echo "arm64_env.sh: --cpu is cortex-a76 or cortex-a72, not '$cpu'" >&2; exit 2 ;;
esac

cache=${EDGESER_ARM64_CACHE:-$HOME/.cache/edgeser-arm64}
root=$cache/root view=$cache/cpu/$cpu site=$cache/site/$package-$version
wrapper=$cache/bin/python-$package-$version-$cpu
requirements=$here/targets/$target/requirements.txt
log() { echo "arm64_env: $*" >&2; }
give_up() { log "$*"; exit "$NO_INSTALL"; }

command -v qemu-aarch64-static >/dev/null \
  || give_up "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"
[ -f "$requirements" ] || give_up "$requirements is missing"
mkdir -p "$cache/debs" "$cache/wheels" "$cache/bin" "$cache/site"

# 1. Debian's arm64 Python, unpacked (not installed) under root/.
root_key=$(printf '%s\n' "${PYTHON_DEBS[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$root/.ready" 2>/dev/null)" != "$root_key" ]; then
  missing=()
  for deb in "${PYTHON_DEBS[@]}"; do
    compgen -G "$cache/debs/${deb}_*_arm64.deb" >/dev/null || compgen -G "$cache/debs/${deb}_*_all.deb" >/dev/null \
      || missing+=("$deb:arm64")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || give_up "no apt-get to download Debian's arm64 packages"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      log "adding the arm64 architecture to dpkg (for apt-get download)"
      dpkg --add-architecture arm64 || give_up "dpkg --add-architecture arm64 failed (run as root)"
      apt-get update -qq || give_up "apt-get update failed"
    elif ! apt-cache show python3.11-minimal:arm64 >/dev/null 2>&1; then
      apt-get update -qq || give_up "apt-get update failed"
    fi
    log "downloading ${#missing[@]} Debian arm64 packages"
    (cd "$cache/debs" && apt-get download -qq "${missing[@]}" 2>&1 | grep -v "unsandboxed as root" >&2) || true
    for deb in "${missing[@]}"; do
      compgen -G "$cache/debs/${deb%:arm64}_*.deb" >/dev/null || give_up "apt-get download $deb failed"
    done
  fi
  rm -rf "$root.new" && mkdir -p "$root.new"
  for deb in "${PYTHON_DEBS[@]}"; do
    for file in "$cache/debs/${deb}"_*.deb; do dpkg-deb -x "$file" "$root.new"; done
  done
  [ -x "$root.new/usr/bin/python3.11" ] || give_up "the arm64 packages hold no usr/bin/python3.11"
  echo "$root_key" > "$root.new/.ready"
  rm -rf "$root" && mv "$root.new" "$root"
fi
mkdir -p "$view/proc"
for entry in "$root"/*; do ln -sfn "../../root/${entry##*/}" "$view/${entry##*/}"; done
read -r variant part revision <<< "$midr"
for ((n = 0; n < $(getconf _NPROCESSORS_CONF); n++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' "$n" "$features"
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\n'
  printf 'CPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$revision"
done > "$view/proc/cpuinfo.new"
mv "$view/proc/cpuinfo.new" "$view/proc/cpuinfo"

# 2. The target's requirements as aarch64 wheels, with the engine pinned, installed into site/.
platforms=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done  # bookworm: glibc 2.36
wheel_args=(--only-binary=:all: "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311)
site_key=$( (cat "$requirements"; echo "$package==$version") | sha256sum | cut -c1-16)
if [ "$(cat "$site/.installed" 2>/dev/null)" != "$site_key" ]; then
  host_python=${PYTHON:-python3}  # any host Python with pip runs pip download/install for the aarch64 wheels
  pip=("$host_python" -m pip)
  if ! "$host_python" -m pip --version >/dev/null 2>&1; then
    [ -x "$cache/pip/bin/pip" ] || "$host_python" -m venv "$cache/pip" \
      || give_up "no pip for $host_python, and no venv for one"
    pip=("$cache/pip/bin/pip")
  fi
  constraints=$cache/constraints-$package-$version.txt
  echo "$package==$version" > "$constraints"
  log "downloading aarch64 wheels for $requirements with $package==$version"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "${pip[@]}" download -q -d "$cache/wheels" "${wheel_args[@]}" \
    -r "$requirements" -c "$constraints" "$package==$version" || give_up "pip download of the aarch64 wheels failed"
  rm -rf "$site.new"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "${pip[@]}" install -q --no-warn-conflicts --no-index --find-links "$cache/wheels" \
    --target "$site.new" "${wheel_args[@]}" -r "$requirements" -c "$constraints" "$package==$version" \
    || give_up "pip install --target of the aarch64 wheels failed"
  echo "$site_key" > "$site.new/.installed"
  rm -rf "$site" && mv "$site.new" "$site"
fi

cat > "$wrapper.new" <<EOF
#!/bin/sh
# Debian's arm64 Python 3.11 under qemu-aarch64-static on a $cpu, with $package $version and $target's requirements.
export QEMU_LD_PREFIX='$view' QEMU_CPU='$cpu'
export PYTHONHOME='$root/usr' PYTHONPATH='$site' PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1
exec qemu-aarch64-static '$root/usr/bin/python3.11' "\$@"
EOF
chmod +x "$wrapper.new" && mv "$wrapper.new" "$wrapper"

if [ "$(cat "$site/.ready-$cpu" 2>/dev/null)" != "$site_key" ]; then
  log "importing $module under emulation"
  probe="import platform, numpy, soundfile, $module as m, importlib.metadata as md; \
print(platform.machine(), platform.python_version(), 'numpy', numpy.__version__, '$package', md.version('$package'), \
'soundfile', soundfile.__version__, 'libsndfile', soundfile.__libsndfile_version__)"
  if ! versions=$("$wrapper" -c "$probe" 2>&1); then
    log "$package $version does not import under $(qemu-aarch64-static --version | head -1):" \
        "$(echo "$versions" | tail -1)"
    exit 1
  fi
  echo "$versions; $(qemu-aarch64-static --version | head -1) -cpu $cpu" > "$site/versions-$cpu.txt"
  echo "$site_key" > "$site/.ready-$cpu"
fi

cat <<EOF
emulated arm64 ready: $(cat "$site/versions-$cpu.txt")
run a bundle's self-test with (from inside the bundle folder):
  PYTHONHOME=$root/usr PYTHONPATH=$site PYTHONNOUSERSITE=1 \\
    qemu-aarch64-static -L $view -cpu $cpu $root/usr/bin/python3.11 -m runner --self-test
or, the same, with the wrapper:
EDGESER_ARM64_PYTHON=$wrapper
EOF
