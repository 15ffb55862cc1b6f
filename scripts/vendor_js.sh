#!/usr/bin/env bash
# Self-host the JavaScript the book needs, so it renders with no network:
# MathJax 3 (equations). The widgets need no library: linattn.interact precomputes their states and
# book/_static/linattn-widgets.js switches them. A pinned npm package, checked by sha256, unpacked
# into _vendor/ (git-ignored),
# which _config.yml serves as static files. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_vendor
stamp="$dest/.vendored-v2"
[ -f "$stamp" ] && exit 0
command -v npm >/dev/null || { echo "vendor_js.sh: npm is needed (apt-get install npm, or install Node.js)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent mathjax@3.2.2 >/dev/null )
( cd "$tmp" && sha256sum -c - <<'SUMS'
1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09  mathjax-3.2.2.tgz
SUMS
)
rm -rf "$dest"; mkdir -p "$dest/mathjax"
mkdir "$tmp/mj"
tar -xzf "$tmp/mathjax-3.2.2.tgz" -C "$tmp/mj"
# MathJax: the combined component plus what it loads at render time (fonts, extensions, menu);
# the speech-rule engine (sre/, 3.9 MB) is left out.
cp "$tmp/mj/package/es5/tex-mml-chtml.js" "$dest/mathjax/"
for sub in input output ui a11y adaptors; do cp -r "$tmp/mj/package/es5/$sub" "$dest/mathjax/"; done
cp "$tmp/mj/package/LICENSE" "$dest/mathjax/"
touch "$stamp"
echo "vendored JavaScript into $dest/ ($(du -sh "$dest" | cut -f1))"
