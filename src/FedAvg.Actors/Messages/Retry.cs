using Akka.Actor;

namespace FedAvg.Actors.Messages;

/// <summary>
/// An actor's own timer tick to ask again until answered: a node's join and registration (Client.ClientHost), a standby's
/// join (Server.StandbyReplica). Never leaves the process, so it is not part of the protocol (Protocol.cs).
/// </summary>
internal sealed record Retry : INoSerializationVerificationNeeded
{
    public static readonly Retry Instance = new();

    /// <summary>The timer's key, one per actor.</summary>
    public const string Timer = "retry";

    /// <summary>Every 2 s: a join through a singleton proxy that has not found the coordinator yet costs one message.</summary>
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(2);
}
