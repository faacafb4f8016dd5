using Akka.Actor;
using FedAvg.Actors.Messages;
using FedAvg.Core;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;

namespace FedAvg.Actors.Hosting;

/// <summary>What every host that runs a server does first: the initial (or resumed) model, and the run's observer.</summary>
public static class RunStart
{
    /// <summary>The model's layout, the weights round 1 (or the round after the checkpoint) starts from, and that round.</summary>
    /// <remarks>A resumed run also takes back the strategy's server-side state (FedAvgM's momentum, FedAdam's moments).</remarks>
    public static (WeightLayout Layout, float[] Initial, int FirstRound) InitialModel(SimulationOptions options, IStrategy strategy, Checkpoint? resumeFrom)
    {
        using var initialModel = ModelZoo.Create(options.Model, options.Seed);
        var layout = WeightLayout.Of(initialModel);
        if (resumeFrom is not { } checkpoint) return (layout, Weights.Read(initialModel, layout), 1);
        if (checkpoint.ModelName != options.Model)
            throw new DataException($"checkpoint is of model '{checkpoint.ModelName}', but this run uses '{options.Model}'.");
        if (!checkpoint.Layout.Equals(layout))
            throw new DataException($"checkpoint layout ({checkpoint.Layout.Describe()}) does not match {options.Model} ({layout.Describe()}).");
        if (checkpoint.Seed != options.Seed)
            throw new DataException($"checkpoint was written by a run with seed {checkpoint.Seed}, this run has seed {options.Seed}.");
        if (checkpoint.StrategyName != strategy.Name)
            throw new DataException($"checkpoint was written by strategy '{checkpoint.StrategyName}', this run uses '{strategy.Name}'.");
        strategy.LoadState(checkpoint.StrategyState ?? []);
        return (layout, checkpoint.Weights, checkpoint.Round + 1);
    }

    /// <summary>An actor on its own thread that turns the server's reports into callbacks and the run's end into a task result.</summary>
    public static IActorRef Observer(ActorSystem system, Action<RoundMetrics> onRound, TaskCompletionSource<object> outcome,
        Action<string>? onEvent = null) =>
        system.ActorOf(Props.Create(() => new RunObserver(onRound, outcome, onEvent)).WithDispatcher("akka.actor.run-observer-dispatcher"), "observer");

    sealed class RunObserver : ReceiveActor
    {
        public RunObserver(Action<RoundMetrics> onRound, TaskCompletionSource<object> outcome, Action<string>? onEvent)
        {
            Receive<Server.ServerEvent>(e => onEvent?.Invoke(e.Text));
            Receive<RoundCompleted>(r => onRound(r.Metrics));
            Receive<RunCompleted>(r => outcome.TrySetResult(r));
            Receive<RunFailed>(r => outcome.TrySetResult(r));
        }
    }
}
