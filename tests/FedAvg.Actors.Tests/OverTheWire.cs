using Akka.Actor;
using Akka.Configuration;
using FedAvg.Actors.Hosting;

namespace FedAvg.Actors.Tests;

/// <summary>
/// An actor system whose messages can come over the wire: Akka.Remote on a loopback port the OS picks, with the
/// project's serializer bindings (simulation.conf). Where this matters, <c>InSession.Needed</c> is true, so the
/// session checks of node, server and standby are on, as in `fedavg server` and `fedavg node`.
/// </summary>
static class OverTheWire
{
    public static readonly Config Config = ConfigurationFactory.ParseString("""
        akka.actor.provider = remote
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        """).WithFallback(HoconFiles.Load("simulation.conf"));

    public static ActorSystem Create(string name) => ActorSystem.Create(name, Config);
}
