# Leaves N orphans for the init to reap, all ending at once, and exits only
# once every one of them is reaped: each child forks a grandchild and exits
# at once (this process reaps the child); the grandchildren, now the init's
# (PID 1 or a subreaper), block on a pipe until it is closed. bench.py runs
# it as `INIT -- perl orphans.pl N` under callgrind.
#
# With `serial` after N, the orphans end one at a time instead, each only
# once the one before is reaped: one orphan a wake-up of the init, so the
# count measures a whole turn of its loop.
use POSIX ();
my $n = shift;
my $serial = (shift // '') eq 'serial';
pipe(my $r, my $w) or die;
pipe(my $pr, my $pw) or die;
for (1..$n) {
    my $p = fork() // die;
    if ($p == 0) {
        close $w; close $pr;
        my $g = fork() // die;
        if ($g == 0) { close $pw; sysread($r, my $b, 1); POSIX::_exit(0); }
        syswrite($pw, pack("L", $g));
        POSIX::_exit(0);
    }
    waitpid($p, 0);
}
close $pw; close $r;
my @orphans;
while (sysread($pr, my $b, 4) == 4) { push @orphans, unpack("L", $b); }
if ($serial) {
    for my $g (@orphans) {
        kill 'KILL', $g;
        select(undef, undef, undef, 0.0002) while kill(0, $g);
    }
    exit 0;
}
# The init is stopped while the orphans end, so that it finds them all
# zombies at one wake-up: its count of wake-ups, and so of instructions,
# does not depend on how the scheduler spreads their ends.
my $init = getppid();
kill 'STOP', $init;
close $w;
for my $g (@orphans) {
    while (1) {
        open(my $st, '<', "/proc/$g/stat") or last;
        my $line = <$st>;
        last if $line =~ /\) Z /;
        select(undef, undef, undef, 0.001);
    }
}
kill 'CONT', $init;
# A zombie still answers kill 0; a reaped pid does not.
for my $g (@orphans) { select(undef, undef, undef, 0.001) while kill(0, $g); }
exit 0;
