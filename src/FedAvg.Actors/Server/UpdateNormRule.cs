using System.Globalization;
using FedAvg.Core.Strategies;

namespace FedAvg.Actors.Server;

/// <summary>
/// The server's norm rule (`fedavg.server.max-update-norm = K`): when a round closes, every update whose
/// ‖Δ‖ = ‖w_local − w_global‖ is more than K times the median ‖Δ‖ of the round's well-formed updates is refused, and
/// the strategy aggregates the rest. It needs no knowledge of which clients lie, only that most do not: the median
/// is an honest client's as long as more than half are honest, and an update above K·median with K &gt; 1 lies above
/// the median, so a round always keeps at least half of its well-formed updates.
/// </summary>
/// <remarks>
/// Why this round's median, held until the close, and not the previous round's, which would let FedAvg fold each
/// update as it arrives: honest norms change with the model, and a reference from another round is stale exactly when
/// it matters. Measured (docs/faults.md): with a previous-round reference and K = 3, one client's ×100 update passed
/// round 1 unchecked (no earlier round), the model jumped, and every honest update of round 2 (‖Δ‖ 24.6–35.9, against
/// 3 × 1.146) was refused, so the run failed. The price of this round's median: with the rule on, the server holds
/// the round's accepted updates until it closes, n·d floats, as a buffered strategy (median, Krum) does, instead of
/// FedAvg's model-size running sum; off (the default), nothing changes. The decision depends on the set of updates
/// alone, and the kept ones go to the strategy in client-id order: the bits never depend on arrival order.
/// </remarks>
public static class UpdateNormRule
{
    /// <summary>‖<paramref name="local"/> − <paramref name="global"/>‖, in a fixed order (the same bits for the same vectors).</summary>
    public static double NormOfUpdate(ReadOnlySpan<float> local, ReadOnlySpan<float> global) =>
        Math.Sqrt(Aggregation.SquaredDistance(local, global));

    /// <summary>The median of <paramref name="norms"/> (the mean of the middle two for an even count); null for none.</summary>
    public static double? Median(IEnumerable<double> norms)
    {
        var sorted = norms.Order().ToArray();
        if (sorted.Length == 0) return null;
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>
    /// Why an update of norm <paramref name="norm"/> is refused under factor <paramref name="k"/> (null: the rule is off)
    /// and the round's median <paramref name="median"/>, or null if it passes. A median of 0 (no update moved the model)
    /// gives no scale to judge by and refuses nothing.
    /// </summary>
    public static string? Rejection(double norm, double? k, double? median)
    {
        if (k is not { } factor || median is not { } m || !(m > 0)) return null;
        if (norm <= factor * m) return null;
        return string.Create(CultureInfo.InvariantCulture, $"update norm {norm:G4} is more than {factor:G4}× the round's median ({m:G4})");
    }
}
