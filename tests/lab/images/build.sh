#!/usr/bin/env bash
# Build the lab stand-in images: every folder next to this script that
# contains a Dockerfile becomes mip-lab/<folder>:lab. An image is rebuilt only when
# its build context (file paths, modes and contents) or the ID of a base image
# changed since it was built. The checksum is stored in the image label
# mip-lab.context-checksum. With --save DIR, each image is also written to
# DIR/<folder>.tar with `docker save`, so lab nodes can `docker load` it
# without a registry.
#
# Nothing is pulled. Every FROM image must already exist locally (the lab
# base mip-lab/debian:13 comes from tests/lab/build-base-image.sh), and the
# script stops before building when one is missing, because Docker would
# otherwise try to fetch it from Docker Hub.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: build.sh [--force] [--save DIR] [FOLDER...]

Build mip-lab/<folder>:lab for every image folder (or only the FOLDERs given).
  --force     rebuild even when the build context has not changed
  --save DIR  also write DIR/<folder>.tar (docker save), except where that
              archive already contains the current image
USAGE
}

images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
label=mip-lab.context-checksum
save_dir=
force=0
selected=()

while (($#)); do
  case $1 in
    --save)
      [[ $# -ge 2 && -n $2 ]] || { echo "build.sh: --save needs a directory" >&2; exit 2; }
      save_dir=$2
      shift 2
      ;;
    --save=*) save_dir=${1#--save=}; shift ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) selected+=("${1%/}"); shift ;;
  esac
done

# Print the images named in FROM lines, leaving out `scratch` and earlier
# build stages. NOTE: a FROM that uses an ARG is printed unexpanded, so its
# presence check fails. No image folder here uses one.
base_images() {
  awk '
    toupper($1) == "FROM" {
      i = 2
      while ($i ~ /^--/) i++
      image = $i
      if (image != "scratch" && !(image in stages)) print image
      if (toupper($(i + 1)) == "AS") stages[$(i + 2)] = 1
    }' "$1"
}

# Print the checksum of a build context: path, mode and SHA-256 of every file
# except Python bytecode, then the ID of each base image.
context_checksum() {
  local folder=$1 base
  {
    (
      cd "$folder"
      find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z |
        while IFS= read -r -d '' file; do
          printf '%s %s %s\n' "$file" "$(stat -c %a "$file")" "$(sha256sum <"$file" | cut -d' ' -f1)"
        done
    )
    while read -r base; do
      printf 'FROM %s %s\n' "$base" "$(docker image inspect -f '{{.Id}}' "$base")"
    done < <(base_images "$folder/Dockerfile")
  } | sha256sum | cut -d' ' -f1
}

# Succeed when the archive's manifest names this image ID and tag.
archive_holds() {
  local archive=$1 image=$2 id=$3 manifest
  manifest=$(tar -xOf "$archive" manifest.json 2>/dev/null) || return 1
  [[ $manifest == *"${id#sha256:}"* && $manifest == *"\"$image\""* ]]
}

if ((${#selected[@]} == 0)); then
  for dockerfile in "$images_dir"/*/Dockerfile; do
    [[ -e $dockerfile ]] || continue
    selected+=("$(basename "$(dirname "$dockerfile")")")
  done
fi
if ((${#selected[@]} == 0)); then
  echo "build.sh: no folder with a Dockerfile under $images_dir" >&2
  exit 1
fi

# Check every folder and base image before building anything.
for name in "${selected[@]}"; do
  if [[ ! -f $images_dir/$name/Dockerfile ]]; then
    echo "build.sh: $images_dir/$name/Dockerfile not found" >&2
    exit 1
  fi
  if [[ ! $name =~ ^[a-z0-9]+([._-][a-z0-9]+)*$ ]]; then
    echo "build.sh: folder name '$name' is not a valid image name (lower-case letters, digits, '.', '_' or '-')" >&2
    exit 1
  fi
  while read -r base; do
    if ! docker image inspect "$base" >/dev/null 2>&1; then
      echo "build.sh: base image $base of $name is not on this host. Build or load it first" \
        "(mip-lab/debian:13 comes from tests/lab/build-base-image.sh); nothing is pulled." >&2
      exit 1
    fi
  done < <(base_images "$images_dir/$name/Dockerfile")
done

if [[ -n $save_dir ]]; then
  mkdir -p "$save_dir"
fi

built=0
current=0
saved=0
for name in "${selected[@]}"; do
  image=mip-lab/$name:lab
  checksum=$(context_checksum "$images_dir/$name")
  stored=$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)

  if ((force == 0)) && [[ $stored == "$checksum" ]]; then
    echo "$image is up to date (context checksum ${checksum:0:12})"
    current=$((current + 1))
  else
    echo "Building $image (context checksum ${checksum:0:12})"
    # The classic builder resolves FROM from the local image store. All bases
    # were checked above, so with --pull=false no registry is contacted.
    # Newer clients print a deprecation notice for it, so the output is shown
    # only when the build fails.
    if ! output=$(DOCKER_BUILDKIT=0 docker build --quiet --pull=false --label "$label=$checksum" \
      --tag "$image" "$images_dir/$name" 2>&1); then
      echo "$output" >&2
      echo "build.sh: building $image failed" >&2
      exit 1
    fi
    echo "Built $image"
    built=$((built + 1))
  fi

  if [[ -n $save_dir ]]; then
    archive=$save_dir/$name.tar
    id=$(docker image inspect -f '{{.Id}}' "$image")
    if [[ -f $archive ]] && archive_holds "$archive" "$image" "$id"; then
      echo "$archive already contains $image"
    else
      docker save --output "$archive.partial" "$image"
      mv -f "$archive.partial" "$archive"
      echo "Saved $image to $archive"
      saved=$((saved + 1))
    fi
  fi
done

echo "Lab images: $built built, $current up to date${save_dir:+, $saved saved to $save_dir}"
