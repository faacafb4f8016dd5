using FedAvg.Actors.Client;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Faults;

/// <summary>The exception an injected `crash` throws, so logs and reasons say it was injected.</summary>
public sealed class InjectedFaultException(string message) : Exception(message);

/// <summary>Local training with the plan's <see cref="FaultStage.Training"/> faults: crash, stall, delay, corruptions, sample lies.</summary>
public sealed class FaultyTraining(ILocalTraining inner, FaultPlan plan, Action<FaultFired> fired) : ILocalTraining
{
    /// <summary>The shard's true size: a client registers honestly, and lies (`samples:N`) only in its updates.</summary>
    public int SampleCount => inner.SampleCount;

    public Task<TrainResult> Train(string clientId, LocalTrain request)
    {
        var firing = plan.Firing(request.Round, clientId).Where(f => f.Behaviour.Stage == FaultStage.Training).ToList();
        if (firing.Count == 0) return inner.Train(clientId, request);
        foreach (var (_, b) in firing) fired(new FaultFired(request.Round, clientId, b.Name));
        if (firing.Any(f => f.Behaviour.Kind == "crash"))
            return Task.FromException<TrainResult>(new InjectedFaultException($"injected crash (fault kit) in round {request.Round}"));
        if (firing.Any(f => f.Behaviour.Kind == "stall"))
            return new TaskCompletionSource<TrainResult>().Task; // never completes: the client never answers again
        return Run(clientId, request, firing);
    }

    async Task<TrainResult> Run(string clientId, LocalTrain request, List<(int Rule, FaultBehaviour Behaviour)> firing)
    {
        var result = await inner.Train(clientId, request).ConfigureAwait(false);
        // trained first, then held: the trainer is not needed once the delay ends (the host may be gone by then)
        var delay = TimeSpan.FromTicks(firing.Where(f => f.Behaviour.Kind == "delay").Sum(f => f.Behaviour.Delay.Ticks));
        if (delay > TimeSpan.Zero) await Task.Delay(delay).ConfigureAwait(false); // the injected slowness itself
        foreach (var (rule, b) in firing)
            result = Corruption.Apply(b, result, request.GlobalWeights, plan.DataSeed(request.Round, clientId, rule));
        return result;
    }
}

/// <summary>The corruptions of an update, on Δ = w_local − w_global, in place where the length stays.</summary>
public static class Corruption
{
    /// <summary>Applies <paramref name="behaviour"/> to <paramref name="result"/> (other kinds pass through unchanged).</summary>
    public static TrainResult Apply(FaultBehaviour behaviour, TrainResult result, ReadOnlySpan<float> global, int seed)
    {
        var w = result.Weights;
        switch (behaviour.Kind)
        {
            case "nan": Array.Fill(w, float.NaN); return result;
            case "inf": Array.Fill(w, float.PositiveInfinity); return result;
            case "sign-flip":
                for (int i = 0; i < w.Length; i++) w[i] = global[i] - (w[i] - global[i]);
                return result;
            case "scale":
            {
                float k = (float)behaviour.Value;
                for (int i = 0; i < w.Length; i++) w[i] = global[i] + k * (w[i] - global[i]);
                return result;
            }
            case "noise":
            {
                var random = new Random(seed);
                for (int i = 0; i < w.Length; i++) w[i] += (float)(behaviour.Value * Gaussian(random));
                return result;
            }
            case "random":
            {
                var random = new Random(seed);
                for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() * 2 - 1);
                return result;
            }
            case "wrong-length":
            {
                var shorter = w[..^1];
                WeightBuffers.Return(w);
                return result with { Weights = shorter };
            }
            case "samples": return result with { SampleCount = (int)behaviour.Value };
            default: return result;
        }
    }

    /// <summary>A standard normal draw (Box–Muller).</summary>
    public static double Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

/// <summary>The plan's <see cref="FaultStage.Sending"/> faults: drop, twice, stale, stop (after an inner interceptor, if any).</summary>
public sealed class FaultyDelivery(FaultPlan plan, Action<FaultFired> fired, IUpdateInterceptor? inner = null) : IUpdateInterceptor
{
    public UpdateInterception Intercept(UpdateSubmitted update)
    {
        var decision = inner?.Intercept(update) ?? new UpdateInterception([update]);
        var firing = plan.Firing(update.Round, update.ClientId).Where(f => f.Behaviour.Stage == FaultStage.Sending).ToList();
        if (firing.Count == 0) return decision;
        var send = decision.Send.ToList();
        bool stop = decision.StopClient;
        foreach (var (_, b) in firing)
        {
            fired(new FaultFired(update.Round, update.ClientId, b.Name));
            switch (b.Kind)
            {
                case "drop": send.Clear(); break;
                case "stop": send.Clear(); stop = true; break;
                case "stale": send = send.Select(Stale).ToList(); break;
                case "twice": send = send.SelectMany(u => new[] { u, Copy(u) }).ToList(); break;
            }
        }
        return new UpdateInterception(send, stop);
    }

    static UpdateSubmitted Stale(UpdateSubmitted u)
    {
        int round = u.Round - 1;
        return u with { Round = round, Weights = u.Weights with { Header = u.Weights.Header with { Round = round } } };
    }

    /// <summary>The same update again; in process with its own copy of the weights (each array is handed over once).</summary>
    static UpdateSubmitted Copy(UpdateSubmitted u) =>
        u.Weights is LocalWeights l ? u with { Weights = l with { Weights = (float[])l.Weights.Clone() } } : u;
}
