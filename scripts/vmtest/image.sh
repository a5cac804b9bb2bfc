#!/usr/bin/env bash
# The VM bench's machine: a Debian 12 kernel, a busybox initramfs and a minimal Debian root disk
# for one architecture, built once into a cache folder and reused while this file is unchanged.
#   scripts/vmtest/image.sh amd64|arm64 CACHE_DIR   -> CACHE_DIR/<arch>-<key>/{vmlinuz,initrd.gz,root.img}
# Prints the folder on stdout. Needs root (mmdebstrap in root mode, mkfs.ext4 -d keeps owners).
#
# Root: mmdebstrap --variant=minbase bookworm with systemd as PID 1, udev, kmod, v4l-utils, procps,
# sqlite3 (the checks read the journal);
# a fixed machine-id and systemd.firstboot=off (else first boot prompts and hangs); the bench's
# agent unit, which runs scripts/vmtest/guest.sh from the payload disk (/dev/vdb) at every boot.
# Kernel: Debian's linux-image-<arch> (6.1), unpacked, only the modules the bench needs kept
# (virtio disk and network, ext4, vivid, xHCI + FTDI/CDC-ACM USB serial) and depmod'ed; the
# initramfs loads the virtio, crc32c and ext4 modules (ext4 needs crc32c but only as a softdep), mounts /dev/vda and hands over to systemd.
# arm64 (built with mmdebstrap --arch=arm64 under qemu-user binfmt) gets the uncompressed Image
# that qemu's -kernel boots directly.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
arch="${1:?usage: image.sh amd64|arm64 CACHE_DIR}"
cache="${2:?usage: image.sh amd64|arm64 CACHE_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
case "$arch" in amd64 | arm64) ;; *) echo "image.sh: unknown arch $arch (amd64|arm64)" >&2; exit 2 ;; esac

key="$(cat "$here/image.sh" | sha256sum | cut -c1-12)"
out="$cache/$arch-$key"
if [ -f "$out/DONE" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
# Older images of this arch (a changed recipe) are dropped: the cache holds one per arch.
find "$cache" -maxdepth 1 -name "$arch-*" -type d ! -name "$arch-$key" ! -name "$arch-base-*" -exec rm -rf {} + 2>/dev/null || true
rm -rf "$out"
work="$(mktemp -d "$cache/.build-$arch-XXXXXX")"
trap 'umount "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
t0=$(date +%s)

if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
  # mmdebstrap runs the arm64 maintainer scripts through qemu-user's binfmt handler.
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  # qemu-user-static (bookworm) ships /usr/lib/binfmt.d/qemu-aarch64.conf for systemd-binfmt;
  # systemd is not PID 1 on every host, so the entry is registered here.
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf || update-binfmts --enable qemu-aarch64 >&2
  fi
fi

# The root file system. The kernel and busybox-static packages are only downloaded into it (for
# the kernel and the initramfs below), not installed. The bootstrap (the slow part: minutes for
# arm64 under qemu-user) is kept as a tarball of its own, keyed by its package list.
mods="virtio_pci virtio_blk virtio_net crc32c_generic ext4 vivid xhci_pci usbserial ftdi_sio cdc_acm"
include="systemd,systemd-sysv,udev,kmod,v4l-utils,procps,sqlite3"
bkey="$(echo "bookworm $arch $include v1" | sha256sum | cut -c1-12)"
base="$cache/$arch-base-$bkey"
if [ ! -f "$base/DONE" ]; then
  find "$cache" -maxdepth 1 -name "$arch-base-*" -type d -exec rm -rf {} + 2>/dev/null || true
  mkdir -p "$base"
  {
    echo 'set -e'
    echo 'mkdir -p /tmp/k && cd /tmp/k'
    echo "kpkg=\"\$(apt-cache depends linux-image-$arch | sed -n 's/.*Depends: \\(linux-image-[0-9].*\\)/\\1/p' | head -n1)\""
    echo 'apt-get download -q busybox-static "$kpkg" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true'
    echo 'ls linux-image-*.deb busybox-static_*.deb >/dev/null'
  } >"$work/dl.sh"
  echo "image.sh: mmdebstrap bookworm $arch ..." >&2
  tb=$(date +%s)
  nice mmdebstrap --quiet --variant=minbase --arch="$arch" --include="$include" \
    --customize-hook="upload $work/dl.sh /tmp/dl.sh" \
    --customize-hook='chroot "$1" sh /tmp/dl.sh' \
    --customize-hook="copy-out /tmp/k $base" \
    --customize-hook='rm -rf "$1"/tmp/k "$1"/tmp/dl.sh' \
    bookworm "$base/root.tar" >&2
  echo "image.sh: mmdebstrap took $(($(date +%s) - tb)) s" >&2
  touch "$base/DONE"
fi
mkdir -p "$work/root" "$work/k"
tar -xf "$base/root.tar" -C "$work/root"
cp "$base"/k/*.deb "$work/k/"

kdeb="$(ls "$work"/k/linux-image-*.deb)"
dpkg-deb -x "$kdeb" "$work/kernel"
kver="$(ls "$work/kernel/lib/modules")"
if [ "$arch" = amd64 ]; then
  cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
else
  # -kernel without UEFI wants the plain Image. Debian's arm64 vmlinuz was a gzip'ed Image; from
  # 6.1.0-57 (bookworm, 2026) it is the plain Image already.
  if gzip -t "$work/kernel/boot/vmlinuz-$kver" 2>/dev/null; then
    zcat "$work/kernel/boot/vmlinuz-$kver" >"$work/vmlinuz"
  else
    cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
  fi
fi
depmod -b "$work/kernel" "$kver"
# Only the modules the bench needs (and what they depend on), a few MB instead of 400.
kmods="$work/mods/lib/modules/$kver"
mkdir -p "$kmods"
cp "$work/kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$kmods/"
for m in $mods; do
  modprobe -d "$work/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
  rel="${ko#"$work/kernel/lib/modules/$kver/"}"
  mkdir -p "$kmods/$(dirname "$rel")"
  cp "$ko" "$kmods/$rel"
done
depmod -b "$work/mods" "$kver"
rm -rf "$work/root/lib/modules" "$work/root/usr/lib/modules"
mkdir -p "$work/root/usr/lib/modules"
cp -a "$kmods" "$work/root/usr/lib/modules/"

# The initramfs: busybox, the module subset, /init.
ird="$work/initrd"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
dpkg-deb -x "$(ls "$work"/k/busybox-static_*.deb)" "$work/bb"
cp "$work/bb/bin/busybox" "$ird/bin/busybox"
cp -a "$kmods" "$ird/lib/modules/"
cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_pci virtio_blk crc32c_generic ext4; do modprobe "$m" 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "vmtest initramfs: cannot mount /dev/vda" >&2
  poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /lib/systemd/systemd
EOF
chmod 755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

# The guest's configuration.
r="$work/root"
echo 5e2c3c1f0c4e4b6e9a1d2b3c4d5e6f70 >"$r/etc/machine-id"
echo pe-sentinel-vm >"$r/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$r/etc/fstab"
passwd -R "$r" -d root >/dev/null
# DHCP from qemu's user network (check 5: the DICOM receiver's port is forwarded from the host).
mkdir -p "$r/etc/systemd/network"
printf '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n' >"$r/etc/systemd/network/50-vmtest.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$r/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# The bench's agent: unpacks the payload disk (a tar) and runs its guest.sh; output on the console.
cat >"$r/etc/systemd/system/vmtest-agent.service" <<'EOF'
[Unit]
Description=pe-sentinel VM bench agent
After=basic.target systemd-udev-trigger.service
[Service]
Type=simple
ExecStartPre=/bin/sh -c 'rm -rf /run/vmtest && mkdir -p /run/vmtest && tar -xf /dev/vdb -C /run/vmtest'
ExecStart=/bin/sh /run/vmtest/guest.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/vmtest-agent.service "$r/etc/systemd/system/multi-user.target.wants/vmtest-agent.service"
# Quiet, fast boots: no getty on the console (the agent owns it), no timers that start apt.
ln -sf /dev/null "$r/etc/systemd/system/serial-getty@.service"
ln -sf /dev/null "$r/etc/systemd/system/getty@.service"
ln -sf /dev/null "$r/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$r/etc/systemd/system/apt-daily-upgrade.timer"
mkdir -p "$r/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\n' >"$r/etc/systemd/journald.conf.d/vmtest.conf"

rm -f "$work/root.img"
mkfs.ext4 -q -F -L vmroot -d "$r" "$work/root.img" 1500M >&2
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.gz" "$work/root.img" "$out/"
echo "$kver" >"$out/KERNEL"
echo "image.sh: $arch image (kernel $kver) built in $(($(date +%s) - t0)) s" >&2
touch "$out/DONE"
echo "$out"
