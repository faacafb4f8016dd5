using Akka.Actor;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// How many proofs (<see cref="NodeIdentity"/>) an actor checks per sender address in a window. Checking one builds
/// a chain to the CA: 0.7-1.1 ms of the actor's own time (a scratch loop of 2,000 checks, 3 runs). A node asks every
/// 2 s until it is answered, and a standby as often, so 20 in 10 s leave an honest member room, while a member that
/// floods forged joins costs the actor at most 20 checks (about 20 ms) per 10 s. Used by the coordinator for node
/// joins and by the standby feed for standby joins; one instance per actor, read and written on its thread only.
/// </summary>
sealed class ProofBudget
{
    public const int PerWindow = 20;
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    /// <summary>Past this many senders the windows that have ended are dropped (at most once a window, so that many
    /// live senders do not cost a scan each), and a stream of new addresses cannot grow it for good.</summary>
    const int PruneAbove = 1024;

    readonly Dictionary<Address, (DateTime Since, int Count)> checkedFrom = new();
    DateTime pruned;

    /// <summary>What a refusal to check says, for the log: the limit and why it is there.</summary>
    public static string Over(string who, Address from, string asks) =>
        $"{who}: not checking more joins from {from} for now: over {PerWindow} in {Window.TotalSeconds:0} s, each a certificate check ({asks})";

    /// <summary>Whether a proof from <paramref name="from"/> may be checked now; counts it if so.</summary>
    public bool TryCheck(Address from)
    {
        var now = DateTime.UtcNow;
        if (checkedFrom.Count > PruneAbove && now - pruned >= Window)
        {
            pruned = now;
            foreach (var ended in checkedFrom.Where(e => now - e.Value.Since >= Window).Select(e => e.Key).ToList())
                checkedFrom.Remove(ended);
        }
        if (!checkedFrom.TryGetValue(from, out var window) || now - window.Since >= Window) window = (now, 0);
        if (window.Count >= PerWindow)
        {
            checkedFrom[from] = window;
            return false;
        }
        checkedFrom[from] = (window.Since, window.Count + 1);
        return true;
    }

    /// <summary>A member that is gone: its count goes with it.</summary>
    public void Forget(Address address) => checkedFrom.Remove(address);
}
