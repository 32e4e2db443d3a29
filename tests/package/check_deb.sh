#!/usr/bin/env bash
# Builds detour's .deb from a finished build directory, unpacks it into a scratch root and runs
# what it holds: `detour --version`, `detour-mock --help`, the man page. Also checks that the
# package's Depends name the Debian runtime libraries (dpkg-shlibdeps) and that the version
# names the commit the source tree is at. Run by ctest as "package" (CMakeLists.txt).
#   tests/package/check_deb.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "check_deb: $*" >&2; exit 1; }

if ! (cd "$build" && cpack -G DEB -B "$work/out") >"$work/cpack.log" 2>&1; then
  cat "$work/cpack.log" >&2
  fail "cpack failed"
fi
debs=("$work"/out/*.deb)
[[ ${#debs[@]} -eq 1 && -f "${debs[0]}" ]] || fail "expected one .deb in $work/out"
deb=${debs[0]}
[[ $(basename "$deb") =~ ^detour_[0-9]+\.[0-9]+\.[0-9]+_[a-z0-9]+\.deb$ ]] ||
  fail "unexpected package file name $(basename "$deb")"

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libcurl4; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done

root="$work/root"
dpkg-deb -x "$deb" "$root"
for path in usr/bin/detour usr/bin/detour-mock; do
  [[ -x "$root/$path" ]] || fail "$path missing or not executable"
done
gzip -t "$root/usr/share/man/man1/detour.1.gz" || fail "man page missing or not gzip"
[[ -s "$root/usr/share/doc/detour/README.md" ]] || fail "README missing from the package"
for path in usr/share/bash-completion/completions/detour usr/share/zsh/vendor-completions/_detour \
  usr/share/fish/vendor_completions.d/detour.fish; do
  [[ -s "$root/$path" ]] || fail "completion $path missing from the package"
done

version=$("$root/usr/bin/detour" --version)
[[ "$version" =~ ^detour\ [0-9]+\.[0-9]+\.[0-9]+(\ \(git\ [0-9a-f]{12}(,\ modified)?\))?$ ]] ||
  fail "unexpected --version: $version"
if commit=$(git -C "$source_dir" rev-parse --short=12 HEAD 2>/dev/null); then
  [[ "$version" == *"(git $commit"* ]] || fail "--version '$version' does not name HEAD $commit"
fi
"$root/usr/bin/detour-mock" --help | grep -q '^usage: detour-mock' ||
  fail "detour-mock --help from the package printed no usage"
echo "check_deb: $(basename "$deb") ok: $version; Depends: $depends"
