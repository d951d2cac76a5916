#!/usr/bin/env bash
# Install, from Debian's packages, what set-up needs and this machine lacks. Usage:
#   tools/system-packages.sh COMMAND=PACKAGE... PACKAGE...   e.g. node=nodejs npm=npm postgresql
# Each COMMAND missing from PATH gets its PACKAGE; a bare PACKAGE is installed when dpkg does not have it. Installing needs root; without
# it the script names the missing packages and fails, so set-up never goes on half-done.
set -euo pipefail

missing=()
for wanted in "$@"; do
  if [[ "$wanted" == *=* ]]; then
    command -v "${wanted%%=*}" >/dev/null || missing+=("${wanted#*=}")
  else
    dpkg-query -W -f='${Status}' "$wanted" 2>/dev/null | grep -q "ok installed" || missing+=("$wanted")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "set-up needs these Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
