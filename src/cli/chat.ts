export async function chatCommand(_args: string[]): Promise<void> {
  throw new Error('not yet');
}
