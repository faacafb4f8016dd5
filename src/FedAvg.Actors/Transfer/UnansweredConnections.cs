using System.Net;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// The weight channel's connections that have not made their first request yet (with TLS: whose handshake has not
/// finished), counted per IP address. With TLS these are the only connections a peer without a federation
/// certificate can hold, each for up to the server's first-request limit (10 s); without a cap per address, one
/// stranger reconnecting in a loop would hold all of the server's <see cref="WeightChannelServer.MaxConnections"/>
/// and the federation's nodes could not fetch their round. A node has at most
/// <see cref="WeightChannelClient.MaxTransfers"/> + 1 connections opening at once, each for the few milliseconds a
/// handshake takes, so a machine running several nodes stays far below the cap.
/// <para>Refusals are logged once per address and then summed, at most one line per <see cref="ReportEvery"/>, so a
/// flood does not fill the server's log.</para>
/// </summary>
sealed class UnansweredConnections(int perAddress, Action<string> warn)
{
    static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(10);

    sealed class Peer
    {
        public int Open;
        public int RefusedUnreported;
        public DateTime LastReport = DateTime.MinValue;
    }

    readonly Dictionary<IPAddress, Peer> peers = new();

    /// <summary>Takes a slot for a new connection from <paramref name="address"/>; false (and logged) when it holds all of its own.</summary>
    public bool TryOpen(IPAddress address)
    {
        string? report = null;
        lock (peers)
        {
            if (!peers.TryGetValue(address, out var peer)) peers[address] = peer = new Peer();
            if (peer.Open < perAddress)
            {
                peer.Open++;
                return true;
            }
            peer.RefusedUnreported++;
            var now = DateTime.UtcNow;
            if (now - peer.LastReport >= ReportEvery)
            {
                report = Refused(address, peer);
                peer.LastReport = now;
            }
        }
        if (report is not null) warn(report);
        return false;
    }

    /// <summary>Gives back the slot of a connection from <paramref name="address"/> that made its first request, or ended.</summary>
    public void Answered(IPAddress address)
    {
        string? report = null;
        lock (peers)
        {
            if (!peers.TryGetValue(address, out var peer)) return;
            if (--peer.Open > 0) return;
            // the address holds nothing now: forget it, and say what was refused since the last line
            if (peer.RefusedUnreported > 0) report = Refused(address, peer);
            peers.Remove(address);
        }
        if (report is not null) warn(report);
    }

    /// <summary>Connections from <paramref name="address"/> that have not made their first request.</summary>
    public int OpenFrom(IPAddress address)
    {
        lock (peers) return peers.TryGetValue(address, out var peer) ? peer.Open : 0;
    }

    string Refused(IPAddress address, Peer peer)
    {
        string line = $"weight channel: refused {peer.RefusedUnreported} connection(s) from {address}: it has {perAddress} open that have not made a request yet"
                      + " (a federation node opens a few; with TLS, a peer that never finishes its handshake)";
        peer.RefusedUnreported = 0;
        return line;
    }
}
