#!/bin/busybox sh
# /init of the VM guest (PID 1, busybox sh; see test/vm/runner.ts for the host side).
#
# Loads the boot modules, mounts the host's root (9p, read-only) under a tmpfs overlay so the
# command can write anywhere (the writes vanish with the guest), mounts the run's control
# share and any extra read-write shares at their host paths, then runs the command the host
# wrote to <ctl>/run.sh in a chroot of that root, with the host's real tools (not busybox's
# applets: in busybox sh they would win over PATH). stdout and stderr go to two virtio serial
# ports the host reads; the exit code goes to <ctl>/exit-code. Then the guest powers off.
#
# Messages starting with "sb-vm:" on the console are for the host: "run start" and
# "run end" time the command, "error" explains a failed boot.

export PATH=/bin:/sbin

fail() {
  echo "sb-vm: error: $*" >/dev/console
  /bin/busybox poweroff -f
  exit 1 # not reached (PID 1 must not exit)
}

/bin/busybox --install -s /bin
mount -t proc proc /proc || fail 'mount /proc'
# "sb-vm: at <seconds since the kernel started> <stage>", for reading where the boot time goes.
stage() {
  read -r up _ </proc/uptime
  echo "sb-vm: at $up $1" >/dev/console
}
stage init
mount -t sysfs sysfs /sys || fail 'mount /sys'
mount -t devtmpfs devtmpfs /dev || fail 'mount /dev'

# What it takes to mount the host's root: insmod in dependency order, worked out on the host
# (test/vm/kernel.ts). Soft dependencies are optional.
while read -r need module params; do
  # shellcheck disable=SC2086 # params is a word list
  insmod "/boot-modules/$module" $params || [ "$need" = optional ] || fail "insmod $module $params"
done </boot-modules/insmod
stage 'share modules loaded'

p9='trans=virtio,version=9p2000.L,msize=512000'
mount -t 9p -o "$p9,ro,cache=loose" hostroot /lower || fail 'mount the host root (9p hostroot)'
mount -t 9p -o "$p9" sbctl /ctl || fail 'mount the control share (9p sbctl)'
[ -f /ctl/spec ] || fail 'the control share has no spec'
# SB_MODULES_DIR, SB_CTL_DIR, SB_SHARES ("tag=path ...")
. /ctl/spec

# Kernel module autoload runs /sbin/modprobe here, in the initramfs: give it the whole tree.
release="$(uname -r)"
mkdir -p "/lib/modules/$release"
mount --bind "/lower$SB_MODULES_DIR" "/lib/modules/$release" || fail "bind the module tree $SB_MODULES_DIR"

# The rest (ip_vs, ipset, netfilter, dummy, ...) in ONE modprobe: a process start is the
# expensive part under TCG. Parameters come from /etc/modprobe.d/sb-vm.conf.
optional=''
required=''
while read -r need module; do
  if [ "$need" = optional ]; then optional="$optional $module"; else required="$required $module"; fi
done </boot-modules/modprobe
# shellcheck disable=SC2086 # word lists
[ -z "$optional" ] || modprobe -a $optional 2>/dev/null
# shellcheck disable=SC2086
modprobe -a $required || fail "modprobe -a$required"
stage 'modules loaded'

mount -t tmpfs -o mode=0755 tmpfs /upper || fail 'mount the overlay tmpfs'
mkdir -p /upper/rw /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/rw,workdir=/upper/work /newroot ||
  fail 'mount the overlay root'

r=/newroot
mount -t proc proc $r/proc || fail 'mount /proc in the root'
mount -t sysfs sysfs $r/sys || fail 'mount /sys in the root'
mount -t devtmpfs devtmpfs $r/dev || fail 'mount /dev in the root'
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts devpts $r/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $r/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $r/run || fail 'mount /run in the root'
mkdir -p "$r/lib/modules/$release"
mount --bind "/lib/modules/$release" "$r/lib/modules/$release"

# Tools that run modprobe themselves (iptables-legacy for ip_tables, ipvsadm for ip_vs) get
# busybox's: the host's kmod (if any) needs the binary indexes busybox depmod does not write.
mkdir -p $r/run/sb-vm
cp /bin/busybox $r/run/sb-vm/busybox
chroot $r /bin/ln -sf /run/sb-vm/busybox /sbin/modprobe || fail 'install modprobe in the root'

mkdir -p "$r$SB_CTL_DIR"
mount --bind /ctl "$r$SB_CTL_DIR" || fail "bind the control share at $SB_CTL_DIR"
for share in $SB_SHARES; do
  tag="${share%%=*}"
  path="${share#*=}"
  mkdir -p "$r$path"
  mount -t 9p -o "$p9" "$tag" "$r$path" || fail "mount share $tag at $path"
done

# The C library re-reads these on every lookup (ipset resolves protocol names per line): a
# read over 9p each time is slow. Writing them copies them up into the tmpfs.
nss=''
for f in protocols services hosts ethertypes nsswitch.conf passwd group; do
  [ -f "/lower/etc/$f" ] && nss="$nss /lower/etc/$f"
done
# shellcheck disable=SC2086 # a word list
[ -z "$nss" ] || cp -L $nss $r/etc/ || fail 'copy the NSS files'
hostname sb-vm
ip link set lo up

port() {
  for dir in /sys/class/virtio-ports/*; do
    if [ "$(cat "$dir/name" 2>/dev/null)" = "$1" ]; then
      echo "/dev/${dir##*/}"
      return 0
    fi
  done
  fail "no virtio port named $1"
}
stdout_port="$(port sb.stdout)"
stderr_port="$(port sb.stderr)"

stage 'mounts done'
echo 'sb-vm: run start' >/dev/console
chroot $r /bin/sh "$SB_CTL_DIR/run.sh" </dev/null >"$stdout_port" 2>"$stderr_port"
code=$?
echo "sb-vm: run end $code" >/dev/console
echo "$code" >/ctl/exit-code.tmp && mv /ctl/exit-code.tmp /ctl/exit-code
sync
umount /ctl
/bin/busybox poweroff -f
