using Akka.Actor;
using Akka.Event;
using FedAvg.Actors.Messages;

namespace FedAvg.Actors.Server;

/// <summary>
/// The parent of the <see cref="FederationServer"/>, and the address everyone talks to (the cluster singleton, or
/// "coordinator" in a simulation); it forwards every message with its original sender. An exception that escapes the
/// server stops it, and the run fails with that reason: a restart would start again from the initial weights and the
/// first round, silently replaying rounds that were already reported.
/// </summary>
public sealed class ServerGuardian : ReceiveActor
{
    readonly Func<Props> serverProps;
    readonly IActorRef observer;
    readonly ILoggingAdapter log = Context.GetLogger();
    IActorRef server = ActorRefs.Nobody;
    Exception? crash;

    /// <param name="serverProps">Called as the guardian starts: a standby builds its server from the replica it holds then.</param>
    public ServerGuardian(Func<Props> serverProps, IActorRef observer)
    {
        this.serverProps = serverProps;
        this.observer = observer;
        Receive<Terminated>(t =>
        {
            if (!t.ActorRef.Equals(server)) return;
            if (crash is not null)
            {
                log.Error("server: stopped on an unexpected error: {0}", crash);
                observer.Tell(new RunFailed(-1, $"the server stopped on an unexpected error: {crash.GetBaseException().Message}"));
            }
            Context.Stop(Self);
        });
        ReceiveAny(message => server.Forward(message));
    }

    public static Props Props(Props serverProps, IActorRef observer) => Props(() => serverProps, observer);

    public static Props Props(Func<Props> serverProps, IActorRef observer) =>
        Akka.Actor.Props.Create(() => new ServerGuardian(serverProps, observer));

    protected override void PreStart()
    {
        Props props;
        try
        {
            props = serverProps();
        }
        catch (Exception e)
        {
            // a standby's replica that cannot be resumed from: the run fails with the reason, it does not start over
            log.Error("server: cannot start: {0}", e.Message);
            observer.Tell(new RunFailed(-1, $"the server cannot start: {e.GetBaseException().Message}"));
            Context.Stop(Self);
            return;
        }
        server = Context.Watch(Context.ActorOf(props, "server"));
    }

    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(0, Timeout.InfiniteTimeSpan, localOnlyDecider: e =>
        {
            crash = e;
            return Directive.Stop;
        });
}
