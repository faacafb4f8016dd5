using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace FedAvg.Actors.Server;

/// <summary>
/// On the server member the coordinator runs on: downs every other member of role `server` that is not a standby this
/// server's <see cref="StandbyFeed"/> has accepted, <c>grace</c> (fedavg.cluster.join-timeout) after it came up. The
/// coordinator is a singleton on the oldest `server` member, so if this server were lost, such a member (a standby
/// whose join went unanswered, or a member that gave itself the role) could be handed it and start a coordinator of
/// its own. A standby asks the feed every 2 s until it is answered, so the grace is many tries; after a takeover the
/// other standbys join the new feed within seconds. Stopped with the coordinator's host, never restarted.
/// </summary>
public sealed class StrayServers : ReceiveActor, IWithTimers
{
    sealed record Check(UniqueAddress Member);

    readonly Cluster cluster = Cluster.Get(Context.System);
    readonly ILoggingAdapter log = Context.GetLogger();

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="onDowned">Told each member downed, with the reason (the host prints it).</param>
    public StrayServers(IActorRef feed, TimeSpan grace, Action<string>? onDowned)
    {
        Receive<ClusterEvent.MemberUp>(up =>
        {
            if (up.Member.HasRole(Hosting.ClusterHosting.ServerRole) && !up.Member.UniqueAddress.Equals(cluster.SelfUniqueAddress))
                Timers.StartSingleTimer(up.Member.UniqueAddress, new Check(up.Member.UniqueAddress), grace);
        });
        Receive<ClusterEvent.MemberRemoved>(removed => Timers.Cancel(removed.Member.UniqueAddress));
        Receive<Check>(check => feed.Tell(new StandbyFeed.IsAccepted(check.Member)));
        Receive<StandbyFeed.Accepted>(answer =>
        {
            if (answer.Yes || !cluster.State.Members.Any(m => m.UniqueAddress.Equals(answer.Member))) return;
            string text = $"downed the server member at {answer.Member.Address}: it was not accepted as a standby within " +
                          $"{Hosting.HoconText.Duration(grace)} (fedavg.cluster.join-timeout) of coming up, and it would be handed the " +
                          "coordinator if this server were lost";
            log.Warning(text);
            onDowned?.Invoke(text);
            cluster.Down(answer.Member.Address);
        });
    }

    public static Props Props(IActorRef feed, TimeSpan grace, Action<string>? onDowned) =>
        Akka.Actor.Props.Create(() => new StrayServers(feed, grace, onDowned));

    protected override void PreStart() =>
        cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => cluster.Unsubscribe(Self);
}
