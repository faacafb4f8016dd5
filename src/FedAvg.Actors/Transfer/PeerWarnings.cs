using System.Net;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// Warnings about what one address's connections did to the weight channel before their first request (a refused
/// certificate, a failed TLS handshake, no request in time, bytes that are not a request, a full server): the first of
/// each kind from an address is logged at once, the ones after it within <see cref="Every"/> are counted, and the
/// count is logged with the last of them once the interval has passed. A kind is the line without the peer's port
/// (the same refusal for the same reason), so a second, different failure from the same machine is still said at once. A node with the wrong certificate retries every few hundred
/// milliseconds, and a stranger as fast as it can connect; each attempt used to cost two lines (the validator's and
/// the handshake's), so one bad peer could fill the server's log and hide the run's own lines.
/// </summary>
sealed class PeerWarnings : IDisposable
{
    /// <summary>At most one line per address and kind in this long (10 s, as <see cref="UnansweredConnections"/>).</summary>
    public TimeSpan Every { get; }

    sealed class Entry
    {
        public DateTime Logged;
        public int Unreported;
        public string Last = "";
    }

    readonly Action<string> warn;
    readonly Dictionary<(IPAddress Address, string Kind), Entry> entries = new();
    readonly Timer flush;

    public PeerWarnings(Action<string> warn, TimeSpan? every = null)
    {
        this.warn = warn;
        Every = every ?? TimeSpan.FromSeconds(10);
        flush = new Timer(_ => Flush(all: false), null, Every, Every);
    }

    /// <summary>Logs <paramref name="line"/> now, or counts it when <paramref name="address"/> had a <paramref name="kind"/> line logged within <see cref="Every"/>.</summary>
    public void Warn(IPAddress address, string kind, string line)
    {
        string? now = null;
        lock (entries)
        {
            var time = DateTime.UtcNow;
            if (entries.TryGetValue((address, kind), out var entry) && time - entry.Logged < Every)
            {
                entry.Unreported++;
                entry.Last = line;
                return;
            }
            if (entry is null) entries[(address, kind)] = entry = new Entry();
            now = entry.Unreported > 0 ? $"{line} (and {entry.Unreported} more like it from {address} before it)" : line;
            entry.Logged = time;
            entry.Unreported = 0;
        }
        warn(now);
    }

    /// <summary>Logs what was counted and not logged for an interval (<paramref name="all"/>: everything counted), and forgets quiet addresses.</summary>
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
                lines.Add($"weight channel: {entry.Unreported} more like it from {key.Address} in the last {(time - entry.Logged).TotalSeconds:0} s; the last: {entry.Last}");
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
