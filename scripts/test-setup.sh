#!/usr/bin/env bash
# Locates or installs what the test suite needs besides node_modules, on a Debian or Ubuntu machine.
# Does nothing when everything is present. Otherwise it says what it will install and why, then installs it with
# apt-get: directly as root, through passwordless sudo otherwise; without either it says what to run and fails.
# Called by `npm test` (pretest), `npm run test:setup` and .ci/run.
#
# One line per requirement: "<command looked up on PATH>|<Debian package>|<what needs it>".
set -uo pipefail

REQUIREMENTS=(
  "chromium|chromium|the browser tests (test/browser) drive Debian's Chromium"
  "ffmpeg|ffmpeg|the audio decoder; the tests run on the distribution's ffmpeg, not the bundled 2018 build"
  "redis-server|redis-server|the cluster tests (test/cluster) run a real Redis for shared sessions and limits"
  "nginx|nginx|the cluster tests put Debian's nginx in front of several instances as the load balancer"
  "gdb|gdb|the soak's memory probes read glibc's arenas through gdb (bench/memory-probe, test/bench/memory-probe)"
)
# Besides PATH, where Debian puts daemons (a non-root PATH often lacks /usr/sbin, where nginx lives).
SBIN_DIRS="${TEST_SETUP_SBIN_DIRS-/usr/sbin /sbin}"

locate() {
  command -v "$1" 2>/dev/null && return 0
  local d
  for d in $SBIN_DIRS; do
    if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
  done
  return 1
}

missing_packages=()
missing_lines=()
present=()
for req in "${REQUIREMENTS[@]}"; do
  IFS='|' read -r cmd pkg why <<<"$req"
  if found=$(locate "$cmd"); then
    present+=("$cmd ($found)")
  else
    missing_packages+=("$pkg")
    missing_lines+=("  - $pkg: $why")
  fi
done

if [ "${#missing_packages[@]}" -eq 0 ]; then
  echo "test setup: nothing to install (found ${present[*]})"
  exit 0
fi

echo "test setup: missing ${missing_packages[*]}; will install with apt-get:"
printf '%s\n' "${missing_lines[@]}"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "test setup: no apt-get here (not Debian/Ubuntu): install ${missing_packages[*]} yourself, then run the tests again." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  echo "test setup: not root and no passwordless sudo. Install them, then run the tests again:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${missing_packages[*]}" >&2
  exit 1
fi

log="${TMPDIR:-/tmp}/live-audio-test-setup.$$.log"
if ! { "${as_root[@]}" apt-get update -qq &&
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${missing_packages[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "test setup: apt-get failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"

for req in "${REQUIREMENTS[@]}"; do
  IFS='|' read -r cmd pkg _ <<<"$req"
  if ! locate "$cmd" >/dev/null; then
    echo "test setup: installed $pkg but \"$cmd\" is still not on PATH" >&2
    exit 1
  fi
done
echo "test setup: installed ${missing_packages[*]}"
