#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection as it is in the working tree.
# ansible-test wants the tree at ansible_collections/mip/federation and reads
# the file list from git, so the tracked and new files are copied into such a
# tree with a git index of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
venv=${VENV:-.venv}
tree=build/sanity/ansible_collections/mip/federation

rm -rf build/sanity
mkdir -p "$tree"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  [[ -e "$file" ]] && printf '%s\0' "$file"
done | tar --null -T - -cf - | tar -x -C "$tree"
(cd "$tree" && git init -q && git add -A)

# ansible-test fetches a get-pip script for its virtual environments; give it
# one that works offline.
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
# ansible-core 2.19's ansible-test bootstraps pip 24.2.
cp tests/sanity/get_pip.py "$cache/get_pip_24_2.py"

cd "$tree"
"$top/$venv/bin/ansible-test" sanity --local --python 3.11 --requirements "$@"
