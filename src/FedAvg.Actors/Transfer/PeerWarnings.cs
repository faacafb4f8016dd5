using System.Net;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// Warnings about what a peer did that is refused and logged, throttled per peer and kind: the first of each kind from
/// a peer is logged at once, the ones after it within <see cref="Every"/> are counted, and the count is logged with
/// the last of them once the interval has passed, so one bad peer cannot fill a log and hide the run's own lines.
/// <list type="bullet">
/// <item>The weight channel (a peer: an IP address): what a connection did before its first request (a refused
/// certificate, a failed TLS handshake, no request in time, bytes that are not a request, a full server). A kind is
/// the line without the peer's port. A node with the wrong certificate retries every few hundred milliseconds, and a
/// stranger as fast as it can connect; each attempt used to cost two lines (the validator's and the handshake's).</item>
/// <item>The actors that check sessions (a peer: the Akka address a message names as its sender): a message dropped
/// because it came outside the session that proves who sent it (Messages/Protocol.cs). A kind is the message's type
/// and why it was dropped. Any member can send these as fast as the wire carries them.</item>
/// </list>
/// A second, different kind from the same peer is still said at once.
/// </summary>
sealed class PeerWarnings : IDisposable
{
    /// <summary>At most one line per peer and kind in this long (10 s, as <see cref="UnansweredConnections"/>).</summary>
    public TimeSpan Every { get; }

    sealed class Entry
    {
        public DateTime Logged;
        public int Unreported;
        public string Last = "";
    }

    readonly Action<string> warn;
    readonly string what;
    readonly Dictionary<(string Peer, string Kind), Entry> entries = new();
    readonly Timer flush;

    /// <param name="warn">Logs a line; called on the caller's thread or on a timer's (an Akka logging adapter may be).</param>
    /// <param name="what">Who warns, as the counted lines begin ("weight channel", "server", "node a", "standby").</param>
    public PeerWarnings(Action<string> warn, string what, TimeSpan? every = null)
    {
        this.warn = warn;
        this.what = what;
        Every = every ?? TimeSpan.FromSeconds(10);
        flush = new Timer(_ => Flush(all: false), null, Every, Every);
    }

    /// <summary>Logs <paramref name="line"/> now, or counts it when <paramref name="address"/> had a <paramref name="kind"/> line logged within <see cref="Every"/>.</summary>
    public void Warn(IPAddress address, string kind, string line) => Warn(address.ToString(), kind, line);

    /// <summary>Logs <paramref name="line"/> now, or counts it when <paramref name="peer"/> had a <paramref name="kind"/> line logged within <see cref="Every"/>.</summary>
    public void Warn(string peer, string kind, string line)
    {
        string? now = null;
        lock (entries)
        {
            var time = DateTime.UtcNow;
            if (entries.TryGetValue((peer, kind), out var entry) && time - entry.Logged < Every)
            {
                entry.Unreported++;
                entry.Last = line;
                return;
            }
            if (entry is null) entries[(peer, kind)] = entry = new Entry();
            now = entry.Unreported > 0 ? $"{line} (and {entry.Unreported} more like it from {peer} before it)" : line;
            entry.Logged = time;
            entry.Unreported = 0;
        }
        warn(now);
    }

    /// <summary>Logs what was counted and not logged for an interval (<paramref name="all"/>: everything counted), and forgets quiet peers.</summary>
    void Flush(bool all)
    {
        var lines = new List<string>();
        lock (entries)
        {
            var time = DateTime.UtcNow;
            foreach (var (key, entry) in entries.ToArray())
            {
                if (!all && time - entry.Logged < Every) continue;
                if (entry.Unreported == 0)
                {
                    entries.Remove(key);
                    continue;
                }
                lines.Add($"{what}: {entry.Unreported} more like it from {key.Peer} in the last {(time - entry.Logged).TotalSeconds:0} s; the last: {entry.Last}");
                entry.Logged = time;
                entry.Unreported = 0;
            }
        }
        foreach (var line in lines) warn(line);
    }

    public void Dispose()
    {
        flush.Dispose();
        Flush(all: true); // what a flood left uncounted is said before the server goes
    }
}
