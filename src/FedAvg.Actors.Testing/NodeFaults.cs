using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;
using Akka.Remote.Transport;

namespace FedAvg.Actors.Testing;

/// <summary>
/// Node-level faults for tests with several actor systems in one process (ClusterServer and ClusterNode on
/// loopback), through Akka.Remote's throttler transport. Every system taking part needs <see cref="ThrottlerConfig"/>
/// in its configuration; its addresses then read akka.trttl.tcp://….
/// </summary>
public static class NodeFaults
{
    /// <summary>HOCON that puts the throttler adapter on the TCP transport.</summary>
    public const string ThrottlerConfig = "akka.remote.dot-netty.tcp.applied-adapters = [trttl]";

    /// <summary>Cuts the link between <paramref name="system"/> and <paramref name="remote"/> both ways: nothing passes, nobody is told.</summary>
    public static Task CutLink(ActorSystem system, Address remote) => Throttle(system, remote, Blackhole.Instance);

    /// <summary>Restores a link cut by <see cref="CutLink"/>.</summary>
    public static Task RestoreLink(ActorSystem system, Address remote) => Throttle(system, remote, Unthrottled.Instance);

    /// <summary>Cuts every link of <paramref name="system"/> to the other members of its cluster.</summary>
    public static async Task Isolate(ActorSystem system)
    {
        var cluster = Cluster.Get(system);
        foreach (var member in cluster.State.Members.Where(m => !m.Address.Equals(cluster.SelfAddress)))
            await CutLink(system, member.Address).ConfigureAwait(false);
    }

    /// <summary>
    /// Kills <paramref name="system"/> as its peers see a SIGKILL: first every link is cut (<see cref="Isolate"/>), so
    /// that no leave, gossip or heartbeat gets out; then it terminates (its graceful leave reaches nobody). Peers notice
    /// only that heartbeats stopped: unreachable, then downed by the split brain resolver.
    /// <paramref name="whenIsolated"/> runs between the two (e.g. cancel the host that owns the system, so it does not rejoin).
    /// </summary>
    public static async Task KillAbruptly(ActorSystem system, Action? whenIsolated = null)
    {
        await Isolate(system).ConfigureAwait(false);
        whenIsolated?.Invoke();
        await system.Terminate().ConfigureAwait(false);
    }

    static async Task Throttle(ActorSystem system, Address remote, ThrottleMode mode)
    {
        var transport = ((IRemoteActorRefProvider)((ExtendedActorSystem)system).Provider).Transport;
        bool done = await transport.ManagementCommand(new SetThrottle(remote, ThrottleTransportAdapter.Direction.Both, mode)).ConfigureAwait(false);
        if (!done)
            throw new InvalidOperationException($"the throttler did not take {mode} for {remote}: is '{ThrottlerConfig}' in {system.Name}'s configuration?");
    }
}
