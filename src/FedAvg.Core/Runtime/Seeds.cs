namespace FedAvg.Core.Runtime;

/// <summary>
/// Seeds derived from (run seed, round, purpose) alone, so that any step of a run can be replayed without
/// replaying the steps before it: a resumed run draws exactly what the uninterrupted one drew.
/// </summary>
public static class Seeds
{
    public const int ClientSampling = 0x5a3b1e;

    public static int Derive(int seed, int round, int purpose)
    {
        unchecked
        {
            ulong h = 0xcbf29ce484222325UL;
            foreach (int part in new[] { seed, round, purpose })
            {
                h ^= (uint)part;
                h *= 0x100000001b3UL;
                h ^= h >> 29;
            }
            return (int)(h & 0x7fffffff);
        }
    }

    /// <summary>The shuffling seed of one client's local training in one round.</summary>
    public static int ForClient(int seed, int round, string clientId) => Derive(seed, round, StableHash(clientId));

    /// <summary>FNV-1a of the UTF-16 code units: unlike string.GetHashCode, the same in every process.</summary>
    public static int StableHash(string text)
    {
        unchecked
        {
            uint h = 2166136261;
            foreach (char c in text)
            {
                h ^= c;
                h *= 16777619;
            }
            return (int)h;
        }
    }
}
