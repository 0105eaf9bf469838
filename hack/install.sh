#!/usr/bin/env bash
# make install / make uninstall: podagent as a systemd service on a Debian 12 host, as root.
#
#   hack/install.sh             installs what is missing from Debian's packages, builds (make
#                               build), installs the binary, the images, the units and a default
#                               config; running it again upgrades in place
#   hack/install.sh uninstall   removes the binary, the images and the units; never the pods, their
#                               state (/var/lib/podagent, /var/log/pods) or /etc/podagent
#
# Where things go:
#   /usr/local/bin/podagent                      the agent
#   /usr/local/bin/podagent-logger               the log driver the shims run, one per container
#   /usr/local/lib/podagent/images/images.tar    the images `make build` makes (pause, kubia,
#                                                busybox): imported by the agent at start, served
#                                                by podagent-mirror
#   /etc/systemd/system/podagent.service         the agent
#   /etc/systemd/system/podagent-mirror.service  the images as a registry on 127.0.0.1:5000
#   /etc/podagent/config.yaml                    settings, written only if absent
#   /etc/podagent/manifests/                     static pods
#
# The archive is named in the config (imageArchives) rather than put where the agent looks by
# default, beside its executable (/usr/local/bin/images/images.tar): /usr/local/bin is for
# programs, and the config then shows where the images come from.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=/usr/local/bin/podagent
# The lean log driver: the runtime runs it for container logs when it sits beside the agent.
logger=/usr/local/bin/podagent-logger
libdir=/usr/local/lib/podagent
archive=/usr/local/lib/podagent/images/images.tar
unitdir=/etc/systemd/system
units=(podagent.service podagent-mirror.service)
confdir=/etc/podagent
config=$confdir/config.yaml
manifests=$confdir/manifests
mirror=http://127.0.0.1:5000

systemd_running() { [ -d /run/systemd/system ]; }

if [ "$(id -u)" != 0 ]; then
  echo "podagent install: run as root (it writes /usr/local, /etc and runs systemctl)" >&2
  exit 1
fi

# put installs src at dst by renaming a copy into place. A running log driver executes
# /usr/local/bin/podagent: writing over it would fail (ETXTBSY) or corrupt it, and removing it
# first would leave a moment in which a shim starting a container finds no log driver. After
# the rename, running processes keep the old file and new ones get the new.
put() {
  local src=$1 dst=$2 mode=$3
  install -D -m "$mode" "$src" "$dst.new"
  mv -f "$dst.new" "$dst"
}

uninstall() {
  if systemd_running; then
    # Stopping is safe: KillMode=process, the pods and their log drivers keep running.
    systemctl disable --now "${units[@]}" 2>/dev/null || true
  fi
  for u in "${units[@]}"; do
    rm -f "$unitdir/$u"
    # What `systemctl enable` made, for when systemd does not run here to disable it.
    rm -f "$unitdir"/*.wants/"$u"
  done
  rm -f "$bin" "$bin.new" "$logger" "$logger.new"
  rm -rf "$libdir"
  if systemd_running; then
    systemctl daemon-reload
  fi
  cat <<MSG
podagent: uninstalled the binary, the images and the units.
podagent: kept $confdir, /var/lib/podagent and /var/log/pods. Pods that were running still run:
          to remove them, delete them (kubectl delete, or remove their manifests) before uninstalling.
MSG
}

install_all() {
  hack/install-deps.sh
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH=$PATH:/usr/local/go/bin
  fi
  make --no-print-directory build

  put bin/podagent "$bin" 0755
  put bin/podagent-logger "$logger" 0755
  put bin/images/images.tar "$archive" 0644
  for u in "${units[@]}"; do
    put "hack/systemd/$u" "$unitdir/$u" 0644
  done
  mkdir -p "$manifests"
  if [ -e "$config" ]; then
    echo "podagent: kept $config"
  else
    # The file is written aside and renamed, so that an interrupted install leaves none rather
    # than half of one, which the next install would keep.
    cat >"$config.new" <<YAML
# podagent serve --config $config. Each field stands for a flag of podagent serve
# (manifestDir for --manifest-dir; podagent serve -h lists them); flags override the file.
apiVersion: podagent.io/v1alpha1
kind: AgentConfiguration
manifestDir: $manifests
# The images make build made, imported at start: the pause image, luksa/kubia and busybox.
imageArchives:
- $archive
# podagent-mirror.service serves the same images; luksa/kubia, pulled Always by default, then
# comes from it on a host without internet. Mirrors are tried in order, then the registry itself.
registryMirrors:
  docker.io:
  - $mirror
YAML
    chmod 0644 "$config.new"
    mv -f "$config.new" "$config"
    echo "podagent: wrote $config"
  fi

  if systemd_running; then
    systemctl daemon-reload
    if systemctl is-active --quiet podagent.service; then
      echo "podagent: the agent runs an older binary; 'systemctl restart podagent' runs this one (pods keep running)"
    fi
    cat <<MSG
podagent: installed. Start it, now and at every boot (this starts containerd and the mirror too):

    systemctl enable --now podagent

then, as root (the kubeconfig is root's, 0600):

    export KUBECONFIG=/var/lib/podagent/kubeconfig
    kubectl get nodes

Logs: journalctl -u podagent. Static pods: $manifests. Settings: $config.
MSG
  else
    cat <<MSG
podagent: installed, but systemd does not run here, so the units are not loaded. Run it by hand:

    $bin mirror --listen ${mirror#http://} --image-archive $archive &
    $bin serve --config $config

then: export KUBECONFIG=/var/lib/podagent/kubeconfig
MSG
  fi
}

case "${1:-install}" in
install) install_all ;;
uninstall) uninstall ;;
*)
  echo "usage: $0 [install|uninstall]" >&2
  exit 2
  ;;
esac
